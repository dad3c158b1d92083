/**
 * Server credentials for mutual TLS: what grpc-js's `ServerCredentials.createSsl(ca, pairs,
 * checkClientCertificate = true)` sets up (client certificate requested, verified against `ca`, refused
 * otherwise — Node's `rejectUnauthorized` stays at its default, true), with TLS 1.3 as the minimum
 * version. grpc-js has no option for the version, so its options are copied into a subclass that adds it.
 */
import type { SecureServerOptions } from "node:http2";
import type { SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";

class MutualTlsCredentials extends ServerCredentials {
  constructor(constructorOptions: SecureServerOptions, contextOptions: SecureContextOptions) {
    super(constructorOptions, contextOptions);
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function mutualTlsCredentials(tls: {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
}): ServerCredentials {
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
  );
}
