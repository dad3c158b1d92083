/**
 * custody's TLS server side: a Node `tls.Server` that never listens itself. The listener (listener.ts)
 * hands it each accepted TCP connection and, once the handshake is done, passes the secured socket to
 * grpc-js. The server requests a client certificate and refuses the handshake unless it verifies against
 * the client CA (`requestCert` and `rejectUnauthorized`, checked by Node's TLS server before any HTTP/2
 * byte is read), with TLS 1.3 as the minimum version, HTTP/2 as the only ALPN protocol, the client CA's
 * CRLs (Node sets OpenSSL's CRL_CHECK | CRL_CHECK_ALL when `crl` is given, so a listed client
 * certificate fails the handshake) and a handshake timeout (a connection that has not finished its
 * handshake by then is destroyed).
 *
 * New material (server certificate and key, client CA, CRLs) is applied to later handshakes with
 * `tls.Server#setSecureContext`, without restarting the listener: connections already open keep the
 * context they were made with, so a rotation fails no call. grpc-js's own secure server credentials are
 * not used: they can carry neither the TLS 1.3 minimum, the CRLs nor a handshake timeout, and grpc-js
 * binds its HTTP/2 server itself, out of reach of the connection and handshake limits.
 */
import { createServer, type SecureContextOptions, type Server } from "node:tls";

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer;
  readonly crl?: readonly Buffer[];
}

export class MutualTls {
  /** Never listening: listener.ts emits 'connection' on it for each accepted socket. */
  readonly server: Server;

  constructor(material: TlsMaterial, opts: { readonly handshakeTimeoutMs: number }) {
    this.server = createServer({
      ...contextOptions(material),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
      handshakeTimeout: opts.handshakeTimeoutMs,
    });
  }

  /** Replaces everything later handshakes use; the caller has checked that key and certificate match. */
  setMaterial(material: TlsMaterial): void {
    this.server.setSecureContext(contextOptions(material));
  }
}

function contextOptions(material: TlsMaterial): SecureContextOptions {
  const crl = material.crl ?? [];
  return {
    cert: [material.cert],
    key: [material.key],
    ca: material.clientCa,
    minVersion: "TLSv1.3",
    ...(crl.length > 0 ? { crl: [...crl] } : {}),
  };
}
