// `npm run gen`: writes the gateway's OpenAPI document (`carehub openapi`) to openapi.json and
// the JSON Schema of the hub's websocket frames (`carehub frames-schema`) to frames.schema.json,
// the two committed files the client is typed from; `npm run gen` then runs scripts/gen-types.mjs,
// which generates the client's types from them (src/lib/api.gen.ts and src/lib/frames.gen.ts,
// not committed).
//
//   node scripts/gen.mjs             write both into web/
//   node scripts/gen.mjs --out DIR   write both into DIR (scripts/test.sh diffs them with web/)
//
// The carehub binary is CAREHUB_BIN, or target/{debug,release}/carehub (under CARGO_TARGET_DIR
// when set), as for the browser tests.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(webDir, '..');

function carehubBin() {
  if (process.env.CAREHUB_BIN) return process.env.CAREHUB_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  for (const p of [join(target, 'debug', 'carehub'), join(target, 'release', 'carehub')]) if (existsSync(p)) return p;
  throw new Error(`no carehub binary under ${target}: run \`cargo build --bin carehub\` first (or set CAREHUB_BIN)`);
}

const outFlag = process.argv.indexOf('--out');
const out = outFlag >= 0 ? resolve(process.argv[outFlag + 1]) : webDir;

const bin = carehubBin();
const text = execFileSync(bin, ['openapi'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const schemaText = execFileSync(bin, ['frames-schema'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });

const docPath = join(out, 'openapi.json');
const schemaPath = join(out, 'frames.schema.json');
mkdirSync(out, { recursive: true });
writeFileSync(docPath, text);
writeFileSync(schemaPath, schemaText);
console.log(`wrote ${docPath} and ${schemaPath}`);
