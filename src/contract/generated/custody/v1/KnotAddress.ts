// Original file: proto/custody/v1/custody.proto


export interface KnotAddress {
  'street'?: (string);
  'street2'?: (string);
  'city'?: (string);
  'region'?: (string);
  'postal_code'?: (string);
  /**
   * ISO 3166-1 alpha-2
   */
  'country'?: (string);
}

export interface KnotAddress__Output {
  'street': (string);
  'street2': (string);
  'city': (string);
  'region': (string);
  'postal_code': (string);
  /**
   * ISO 3166-1 alpha-2
   */
  'country': (string);
}
