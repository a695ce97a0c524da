import assert from "node:assert/strict";
import { test } from "node:test";
import { DhcpdSyntaxError, parseDhcpdConf, tokenize, wordsOf } from "./dhcpd-conf.js";

test("tokens: words, quoted strings with escapes and # inside, punctuation, comments, positions", () => {
  const tokens = tokenize('option domain-name "a \\"b\\" #c"; # comment\n  host x{}');
  assert.deepEqual(
    tokens.map((t) => [t.kind, t.text, t.line, t.col]),
    [
      ["word", "option", 1, 1],
      ["word", "domain-name", 1, 8],
      ["string", 'a "b" #c', 1, 20],
      ["punct", ";", 1, 32],
      ["word", "host", 2, 3],
      ["word", "x", 2, 8],
      ["punct", "{", 2, 9],
      ["punct", "}", 2, 10],
    ],
  );
});

test("statements: nested blocks, commas, an if/elsif chain, a stray ;", () => {
  const tree = parseDhcpdConf(`
subnet 10.0.0.0 netmask 255.0.0.0 {
  option domain-name-servers 10.0.0.1, 10.0.0.2;;
  pool { range 10.0.0.5 10.0.0.9; }
}
if exists user-class { filename "a"; } elsif option arch = 00:07 { filename "b"; }
`);
  assert.deepEqual(
    tree.map((s) => [wordsOf(s)[0], s.line, s.block?.length]),
    [
      ["subnet", 2, 2],
      ["if", 6, 1],
      ["elsif", 6, 1],
    ],
  );
  assert.deepEqual(wordsOf(tree[0]!.block![0]!), ["option", "domain-name-servers", "10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(wordsOf(tree[0]!.block![1]!.block![0]!), ["range", "10.0.0.5", "10.0.0.9"]);
});

test("syntax errors name the place", () => {
  const at = (text: string) => {
    try {
      parseDhcpdConf(text, "f");
    } catch (error) {
      assert.ok(error instanceof DhcpdSyntaxError);
      return error.message;
    }
    return "parsed";
  };
  assert.equal(at("a {\n b;\n"), "f:1:3: this { is never closed");
  assert.equal(at("a;\n}"), "f:2:1: } closes nothing");
  assert.equal(at("a b"), "f:1:3: statement has no closing ;");
  assert.equal(at('a "b'), "f:1:3: unterminated string");
});
