/**
 * The reference every benchmark divides by: OpenSSL's own RSA-2048 private-key operations per second
 * (`openssl speed rsa2048`, the "sign/s" column), measured on the same machine in the same run.
 */
import { execFileSync } from "node:child_process";

export function opensslRsa2048PrivateOpsPerSecond(opts: { seconds: number; processes?: number }): number {
  const args = ["speed", "-seconds", String(opts.seconds)];
  if (opts.processes && opts.processes > 1) args.push("-multi", String(opts.processes));
  args.push("rsa2048");
  const out = execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  // Single: "rsa 2048 bits 0.000540s 0.000016s   1851.9  62500.0"; -multi: "rsa 2048 bits ... sign/s verify/s" the same way.
  const line = out.split("\n").find((l) => /^rsa\s+2048 bits/.test(l.trim()));
  const fields = line?.trim().split(/\s+/);
  const signPerSecond = Number(fields?.[fields.length - 2]);
  if (!Number.isFinite(signPerSecond) || signPerSecond <= 0)
    throw new Error(`cannot read openssl speed output:\n${out}`);
  return signPerSecond;
}
