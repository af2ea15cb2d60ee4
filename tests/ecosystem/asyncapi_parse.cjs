// Parses an AsyncAPI document with the official parser (@asyncapi/parser, from NPM_DIR) and
// prints, as one JSON object, its diagnostics and each message's examples as the parser read
// them. Exit code 0 whether or not it parsed: the Python test judges.
"use strict";
const path = require("path");
const load = require("module").createRequire(path.join(process.env.NPM_DIR, "package.json"));
const { Parser, fromFile } = load("@asyncapi/parser");

(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[2]).parse();
  const messages = {};
  if (document) {
    for (const message of document.allMessages()) {
      messages[message.id()] = message.examples().all().map((e) => ({
        name: e.name(),
        payload: e.payload(),
      }));
    }
  }
  const severities = ["error", "warning", "information", "hint"];
  process.stdout.write(JSON.stringify({
    parsed: Boolean(document),
    diagnostics: diagnostics.map((d) => ({
      severity: severities[d.severity] ?? String(d.severity),
      code: d.code,
      message: d.message,
      path: d.path.join("/"),
    })),
    messages,
  }));
})().catch((err) => {
  console.error(err);
  process.exit(2);
});
