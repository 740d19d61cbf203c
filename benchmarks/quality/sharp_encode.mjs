// sharp's encodes for the quality harness (benchmarks/quality/sharp.py):
//
//   node sharp_encode.mjs MODULES JOBS.json
//
// MODULES is the node_modules folder where sharp is installed
// (.bench-node-quality/). Each job names a reference PNG, a format, sharp's
// output options and an output path; the PNG is decoded once, then encoded
// `repeat` times from raw pixels (encode time only, as the other sides are
// timed) and the last output written. Prints one JSON list: the times in ms.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [modules, jobsPath] = process.argv.slice(2);
if (!modules || !jobsPath) {
  console.error("usage: node sharp_encode.mjs MODULES JOBS.json");
  process.exit(2);
}
const require = createRequire(join(modules, "quality.cjs"));
const sharp = require("sharp");
sharp.cache(false);

const results = [];
for (const job of JSON.parse(readFileSync(jobsPath, "utf8"))) {
  const { data, info } = await sharp(job.input).raw().toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const times = [];
  let output = null;
  for (let i = 0; i < job.repeat; i++) {
    const started = process.hrtime.bigint();
    output = await sharp(data, raw).toFormat(job.format, job.options).toBuffer();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  writeFileSync(job.output, output);
  results.push({ output: job.output, ms: times });
}
console.log(JSON.stringify({ versions: sharp.versions, concurrency: sharp.concurrency(), results }));
