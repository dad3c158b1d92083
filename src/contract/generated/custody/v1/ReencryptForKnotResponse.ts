// Original file: proto/custody/v1/custody.proto


export interface ReencryptForKnotResponse {
  /**
   * compact JWE for Knot's POST /card
   */
  'jwe'?: (string);
  /**
   * canonical form of the Dotva key used
   */
  'key_fingerprint'?: (string);
  /**
   * RFC 7638 thumbprint of knot_jwk
   */
  'recipient_thumbprint'?: (string);
  'card_last4'?: (string);
  /**
   * first six digits of the decrypted PAN (PCI DSS allows showing them)
   */
  'card_bin'?: (string);
}

export interface ReencryptForKnotResponse__Output {
  /**
   * compact JWE for Knot's POST /card
   */
  'jwe': (string);
  /**
   * canonical form of the Dotva key used
   */
  'key_fingerprint': (string);
  /**
   * RFC 7638 thumbprint of knot_jwk
   */
  'recipient_thumbprint': (string);
  'card_last4': (string);
  /**
   * first six digits of the decrypted PAN (PCI DSS allows showing them)
   */
  'card_bin': (string);
}
