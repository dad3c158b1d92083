import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import { FingerprintError } from "./errors.js";
import {
  fingerprintForms,
  isCanonicalFingerprint,
  normalizeFingerprint,
  spkiFingerprint,
} from "./fingerprint.js";

const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pem = publicKey.export({ type: "spki", format: "pem" }) as string;

describe("key fingerprints", () => {
  it("canonical form equals `openssl pkey -pubin -outform DER | sha256sum`", () => {
    const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "DER"], { input: pem });
    const hex = execFileSync("sha256sum", { input: der, encoding: "utf8" }).split(" ")[0];
    const forms = fingerprintForms(publicKey);
    expect(forms.canonical).toBe(`sha256:${hex}`);
    expect(spkiFingerprint(publicKey.export({ type: "spki", format: "der" }))).toBe(forms.canonical);
    expect(isCanonicalFingerprint(forms.canonical)).toBe(true);
  });

  it("every alias form normalizes to the canonical form or is itself indexed", async () => {
    const forms = fingerprintForms(publicKey);
    const hex = forms.canonical.slice("sha256:".length);
    const digest = Buffer.from(hex, "hex");
    const thumbprint = await calculateJwkThumbprint(publicKey.export({ format: "jwk" }) as never, "sha256");
    expect(forms.aliases).toContain(thumbprint);
    expect(forms.aliases).toContain(digest.toString("base64url"));
    for (const spelling of [
      forms.canonical,
      hex,
      hex.toUpperCase(),
      `SHA256:${hex}`,
      `sha-256:${hex}`,
      hex.match(/../g)!.join(":"),
      hex.match(/../g)!.join(":").toUpperCase(),
      digest.toString("base64"),
      ` ${forms.canonical}\n`,
    ]) {
      expect(normalizeFingerprint(spelling)).toBe(forms.canonical);
    }
    // base64url digests and RFC 7638 thumbprints look alike: both stay as they are, both are in the index.
    expect(normalizeFingerprint(digest.toString("base64url"))).toBe(digest.toString("base64url"));
    expect(normalizeFingerprint(thumbprint)).toBe(thumbprint);
  });

  it.each([
    "",
    "sha256:",
    "sha256:abc",
    "md5:0123",
    "x".repeat(300),
    `sha256:${"g".repeat(64)}`,
    "not a fingerprint",
  ])("rejects %j", (text) => {
    expect(() => normalizeFingerprint(text)).toThrow(FingerprintError);
  });
});
