/**
 * Server credentials for mutual TLS: what grpc-js's `ServerCredentials.createSsl(ca, pairs,
 * checkClientCertificate = true)` sets up (client certificate requested, verified against `ca`, refused
 * otherwise — Node's `rejectUnauthorized` stays at its default, true), with TLS 1.3 as the minimum
 * version and the client CA's CRLs (Node sets OpenSSL's CRL_CHECK | CRL_CHECK_ALL when `crl` is given, so a
 * listed client certificate fails the handshake). grpc-js has no option for either, so its options are
 * copied into a subclass that adds them. A new CRL is applied to later handshakes through grpc-js's
 * secure-context update (`http2.Server#setSecureContext`), without restarting the listener.
 */
import type { SecureServerOptions } from "node:http2";
import type { SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";

export class MutualTlsCredentials extends ServerCredentials {
  constructor(
    constructorOptions: SecureServerOptions,
    /** Without CRLs: each update puts the current ones on top. */
    private readonly contextOptions: SecureContextOptions,
    crl: readonly Buffer[],
  ) {
    super(constructorOptions, withCrl(contextOptions, crl));
  }

  /** Replaces the CRLs checked by handshakes from now on. */
  setCrl(crl: readonly Buffer[]): void {
    this.updateSecureContextOptions(withCrl(this.contextOptions, crl));
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function withCrl(options: SecureContextOptions, crl: readonly Buffer[]): SecureContextOptions {
  return crl.length > 0 ? { ...options, crl: [...crl] } : options;
}

export function mutualTlsCredentials(tls: {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
  crl?: readonly Buffer[];
}): MutualTlsCredentials {
  const base = ServerCredentials.createSsl(
    tls.clientCa,
    [{ cert_chain: tls.cert, private_key: tls.key }],
    true,
  );
  const constructorOptions = base._getConstructorOptions();
  const contextOptions = base._getSecureContextOptions();
  if (!constructorOptions?.requestCert || !contextOptions) {
    throw new Error("grpc-js did not produce client-certificate-checking options");
  }
  return new MutualTlsCredentials(
    // noDelay: grpc-js sets TCP_NODELAY on its client sockets but not on accepted ones; without it a
    // response's small writes wait behind Nagle and the peer's delayed ACK (tens of milliseconds).
    { ...constructorOptions, requestCert: true, rejectUnauthorized: true, noDelay: true },
    { ...contextOptions, minVersion: "TLSv1.3" },
    tls.crl ?? [],
  );
}
