// Original file: proto/custody/v1/custody.proto

import type { KnotUser as _custody_v1_KnotUser, KnotUser__Output as _custody_v1_KnotUser__Output } from '../../custody/v1/KnotUser.js';

export interface ReencryptForKnotRequest {
  /**
   * compact JWE from Dotva card.issued.secrets
   */
  'secrets_jwe'?: (string);
  /**
   * "sha256:..." (or an accepted alias form) from the same webhook
   */
  'key_fingerprint'?: (string);
  /**
   * Knot's public JWK, JSON text, as GET /jwe/key returned it
   */
  'knot_jwk'?: (string);
  /**
   * cardholder profile; no card data in here
   */
  'user'?: (_custody_v1_KnotUser | null);
  /**
   * echoed in the audit log
   */
  'request_id'?: (string);
}

export interface ReencryptForKnotRequest__Output {
  /**
   * compact JWE from Dotva card.issued.secrets
   */
  'secrets_jwe': (string);
  /**
   * "sha256:..." (or an accepted alias form) from the same webhook
   */
  'key_fingerprint': (string);
  /**
   * Knot's public JWK, JSON text, as GET /jwe/key returned it
   */
  'knot_jwk': (string);
  /**
   * cardholder profile; no card data in here
   */
  'user': (_custody_v1_KnotUser__Output | null);
  /**
   * echoed in the audit log
   */
  'request_id': (string);
}
