import { describe, expect, it } from "vitest";
import { JsonShapeError, scanObjectMembers } from "./json-members.js";

const scan = (text: string) => scanObjectMembers(Buffer.from(text, "utf8"));

describe("scanObjectMembers", () => {
  it("locates each member's value and its kind without decoding values", () => {
    const text = '{"a":"xy","b":-1.5e3,"c":[true,{"d":null}],"\\u0065":false,"f":{"g":1}}';
    const members = scan(text);
    expect([...members.keys()]).toEqual(["a", "b", "c", "e", "f"]);
    const slice = (name: string) => text.slice(members.get(name)!.start, members.get(name)!.end);
    expect(slice("a")).toBe('"xy"');
    expect(members.get("a")!.kind).toBe("string");
    expect(slice("b")).toBe("-1.5e3");
    expect(members.get("b")!.kind).toBe("number");
    expect(slice("c")).toBe('[true,{"d":null}]');
    expect(members.get("c")!.kind).toBe("other");
    expect(members.get("e")!.kind).toBe("other");
    expect(slice("f")).toBe('{"g":1}');
    expect(members.get("f")!.kind).toBe("object");
  });

  it("accepts what JSON.parse accepts for these documents", () => {
    for (const text of [
      "{}",
      " { } ",
      '{"a":[]}',
      '{"a":{}}',
      '{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
      '{"a":0}',
      '{"a":1E+2}',
    ]) {
      expect(() => JSON.parse(text)).not.toThrow();
      expect(() => scan(text)).not.toThrow();
    }
  });

  it.each([
    ["an array", "[1]"],
    ["a string", '"a"'],
    ["a leading zero", '{"a":01}'],
    ["a bare minus", '{"a":-}'],
    ["a dangling decimal point", '{"a":1.}'],
    ["an empty exponent", '{"a":1e}'],
    ["a bad escape", '{"a":"\\x41"}'],
    ["a short unicode escape", '{"a":"\\u12"}'],
    ["a raw control character", '{"a":"x\u0001"}'],
    ["an unterminated string", '{"a":"x'],
    ["a misspelt literal", '{"a":tru}'],
    ["a trailing comma", '{"a":1,}'],
    ["a missing colon", '{"a" 1}'],
    ["single quotes", "{'a':1}"],
    ["trailing bytes", '{"a":1}{}'],
    ["a duplicate name", '{"a":1,"a":2}'],
    ["a duplicate spelled with an escape", '{"a":1,"\\u0061":2}'],
    ["nesting deeper than 16", `{"a":${"[".repeat(20)}${"]".repeat(20)}}`],
  ])("rejects %s", (_name, text) => {
    expect(() => scan(text)).toThrow(JsonShapeError);
  });
});
