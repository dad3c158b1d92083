// Original file: proto/custody/v1/custody.proto

import type { KnotName as _custody_v1_KnotName, KnotName__Output as _custody_v1_KnotName__Output } from '../../custody/v1/KnotName.js';
import type { KnotAddress as _custody_v1_KnotAddress, KnotAddress__Output as _custody_v1_KnotAddress__Output } from '../../custody/v1/KnotAddress.js';

/**
 * Mirrors Knot's `user` object.
 */
export interface KnotUser {
  'name'?: (_custody_v1_KnotName | null);
  'address'?: (_custody_v1_KnotAddress | null);
  /**
   * E.164, e.g. "+14155550123"
   */
  'phone_number'?: (string);
}

/**
 * Mirrors Knot's `user` object.
 */
export interface KnotUser__Output {
  'name': (_custody_v1_KnotName__Output | null);
  'address': (_custody_v1_KnotAddress__Output | null);
  /**
   * E.164, e.g. "+14155550123"
   */
  'phone_number': (string);
}
