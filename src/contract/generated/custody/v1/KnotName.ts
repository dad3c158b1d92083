// Original file: proto/custody/v1/custody.proto


export interface KnotName {
  'first_name'?: (string);
  'last_name'?: (string);
}

export interface KnotName__Output {
  'first_name': (string);
  'last_name': (string);
}
