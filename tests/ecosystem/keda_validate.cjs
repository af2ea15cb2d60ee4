// Validates KEDA objects with the models of the npm package @kubernetes-models/keda (from
// NPM_DIR), which are generated from KEDA's CRDs and check each kind with its JSON Schema (ajv).
// Reads every YAML document of the files named as arguments, or of stdin without arguments, and
// prints one JSON object: the package versions and a verdict per document. Exit code 1 when a
// document is invalid or of a kind it has no model for, 2 when it could not run.
"use strict";
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");

const NPM_DIR = process.env.NPM_DIR;
const KEDA = path.join(NPM_DIR, "node_modules", "@kubernetes-models", "keda");
// js-yaml as the AsyncAPI parser's dependency tree provides it (scripts/test installs both).
const parserRequire = require("module").createRequire(
  path.join(NPM_DIR, "node_modules", "@asyncapi", "parser", "package.json"),
);
const yaml = parserRequire("js-yaml");

const KINDS = ["ScaledObject", "TriggerAuthentication"];

(async () => {
  // The package is ESM only: import its keda.sh/v1alpha1 entry point by file URL.
  const models = await import(pathToFileURL(path.join(KEDA, "keda.sh", "v1alpha1", "index.js")).href);
  const byType = new Map(KINDS.map((k) => [`${models[k].apiVersion} ${k}`, models[k]]));

  const sources = process.argv.length > 2
    ? process.argv.slice(2).map((file) => [file, fs.readFileSync(file, "utf8")])
    : [["<stdin>", fs.readFileSync(0, "utf8")]];

  const documents = [];
  for (const [source, text] of sources) {
    yaml.loadAll(text, (doc) => {
      if (doc === null || doc === undefined) return;
      const verdict = {
        source,
        index: documents.length,
        apiVersion: doc.apiVersion ?? null,
        kind: doc.kind ?? null,
        name: doc.metadata?.name ?? null,
        valid: false,
        errors: [],
      };
      const Model = byType.get(`${doc.apiVersion} ${doc.kind}`);
      if (!Model) {
        verdict.errors.push({ path: "", message: `no @kubernetes-models/keda model for ${doc.apiVersion} ${doc.kind}` });
      } else {
        try {
          new Model(doc).validate();
          verdict.valid = true;
        } catch (err) {
          if (!Array.isArray(err.errors)) throw err;
          verdict.errors = err.errors.map((e) => ({ path: e.instancePath, message: e.message }));
        }
      }
      documents.push(verdict);
    });
  }

  const version = (dir) => JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
  process.stdout.write(JSON.stringify({
    versions: {
      "@kubernetes-models/keda": version(KEDA),
      "js-yaml": parserRequire("js-yaml/package.json").version,
      node: process.versions.node,
    },
    documents,
  }));
  process.exitCode = documents.length > 0 && documents.every((d) => d.valid) ? 0 : 1;
})().catch((err) => {
  console.error(err);
  process.exit(2);
});
