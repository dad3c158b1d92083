/**
 * Server credentials for mutual TLS: what grpc-js's `ServerCredentials.createSsl(ca, pairs,
 * checkClientCertificate = true)` sets up (client certificate requested, verified against `ca`, refused
 * otherwise — Node's `rejectUnauthorized` stays at its default, true), with TLS 1.3 as the minimum
 * version and the client CA's CRLs (Node sets OpenSSL's CRL_CHECK | CRL_CHECK_ALL when `crl` is given, so a
 * listed client certificate fails the handshake). grpc-js has no option for either, so its options are
 * copied into a subclass that adds them. New material (server certificate and key, client CA, CRLs) is
 * applied to later handshakes through grpc-js's secure-context update (`http2.Server#setSecureContext`),
 * without restarting the listener: connections already open keep the context they were made with, so a
 * rotation fails no call. grpc-js's own FileWatcherCertificateProvider is not used: it reads the
 * certificate and the key separately and hands over whatever pair it read (a rotation caught between
 * the two writes would install a key that does not match its certificate), and its server credentials
 * cannot carry the TLS 1.3 minimum or the CRLs.
 */
import type { SecureServerOptions } from "node:http2";
import type { SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";

export class MutualTlsCredentials extends ServerCredentials {
  constructor(
    constructorOptions: SecureServerOptions,
    /** Without CRLs: each update puts the current ones on top. */
    private contextOptions: SecureContextOptions,
    private crl: readonly Buffer[],
  ) {
    super(constructorOptions, withCrl(contextOptions, crl));
  }

  /** Replaces the CRLs checked by handshakes from now on. */
  setCrl(crl: readonly Buffer[]): void {
    this.crl = crl;
    this.updateSecureContextOptions(withCrl(this.contextOptions, crl));
  }

  /** Replaces everything later handshakes use; the caller has checked that key and certificate match. */
  setMaterial(tls: TlsMaterial): void {
    this.contextOptions = { ...this.contextOptions, ca: tls.clientCa, cert: [tls.cert], key: [tls.key] };
    this.setCrl(tls.crl ?? []);
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function withCrl(options: SecureContextOptions, crl: readonly Buffer[]): SecureContextOptions {
  return crl.length > 0 ? { ...options, crl: [...crl] } : options;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer;
  readonly crl?: readonly Buffer[];
}

export function mutualTlsCredentials(tls: TlsMaterial): MutualTlsCredentials {
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
