/**
 * Every case of Wycheproof's json_web_encryption_test.json goes through parse + decrypt.
 *
 * Only RSA-OAEP-256 + A256GCM may succeed, and must yield the expected plaintext. Everything else is
 * rejected, and rejected *before* the private key is touched whenever the header alone disqualifies it
 * (other algorithms, JSON serialization, missing parts): the unwrap spy proves it.
 */
import { createPrivateKey, type JsonWebKey } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";
import { readWycheproof } from "../../tools/testing/wycheproof.js";
import { CryptoError, JweDecryptError, JweHeaderUnsupportedError, JweMalformedError } from "./errors.js";
import { decryptJwe, parseCompactJwe } from "./jwe-decrypt.js";

interface JweCase {
  tcId: number;
  comment: string;
  pt: string;
  enc: string;
  jwe: string;
  result: "valid" | "invalid";
  flags: string[];
}
interface JweGroup {
  comment: string;
  private: JsonWebKey & { kty: string };
  tests: JweCase[];
}

const vectors = readWycheproof<{ testGroups: JweGroup[] }>("json_web_encryption_test.json");
const all = vectors.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
const rsa = all.filter(({ group }) => group.private.kty === "RSA");
const others = all.filter(({ group }) => group.private.kty !== "RSA");

function headerOf(jwe: string): { alg?: string; enc?: string } {
  try {
    return JSON.parse(Buffer.from(jwe.split(".")[0] ?? "", "base64url").toString("utf8"));
  } catch {
    return {};
  }
}

const isOurPair = (jwe: string) => {
  const h = headerOf(jwe);
  return h.alg === "RSA-OAEP-256" && h.enc === "A256GCM";
};

async function attempt(group: JweGroup, jwe: string) {
  const unwrap = vi.fn(privateKeyUnwrap(createPrivateKey({ key: group.private, format: "jwk" })));
  try {
    const plaintext = await decryptJwe(parseCompactJwe(jwe), unwrap);
    return { plaintext, unwrapCalls: unwrap.mock.calls.length };
  } catch (error) {
    return { error, unwrapCalls: unwrap.mock.calls.length };
  }
}

describe("Wycheproof JWE vectors, RSA-keyed cases", () => {
  it("covers the RSA groups of the file", () => {
    // Guards against the filter silently selecting nothing if the file's layout changes.
    expect(rsa.length).toBe(44);
    expect(rsa.filter(({ test }) => test.result === "valid" && isOurPair(test.jwe)).length).toBe(1);
  });

  it.each(
    rsa.map(({ group, test }) => [`tc${test.tcId} ${group.comment} ${test.comment}`, group, test] as const),
  )("%s", async (_name, group, test) => {
    const outcome = await attempt(group, test.jwe);
    if (test.result === "valid" && isOurPair(test.jwe)) {
      expect(outcome.error).toBeUndefined();
      expect(outcome.plaintext?.toString("hex")).toBe(test.pt);
      return;
    }
    expect(outcome.error).toBeInstanceOf(CryptoError);
    if (!isOurPair(test.jwe)) {
      // Another alg/enc (or no readable header): refused from the header, private key untouched.
      expect(outcome.error).toBeInstanceOf(
        test.jwe.startsWith("{") ? JweMalformedError : JweHeaderUnsupportedError,
      );
      expect(outcome.unwrapCalls).toBe(0);
    } else {
      expect([JweDecryptError, JweMalformedError]).toContain((outcome.error as object).constructor);
    }
  });
});

describe("Wycheproof JWE vectors, non-RSA cases", () => {
  it.each(
    others.map(({ group, test }) => [`tc${test.tcId} ${group.comment} ${test.comment}`, test] as const),
  )("%s is refused before any private-key operation", async (_name, test) => {
    const unwrap = vi.fn();
    await expect((async () => decryptJwe(parseCompactJwe(test.jwe), unwrap))()).rejects.toBeInstanceOf(
      CryptoError,
    );
    expect(unwrap).not.toHaveBeenCalled();
  });
});
