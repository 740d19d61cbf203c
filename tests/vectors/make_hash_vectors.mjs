// The reference ThumbHash and BlurHash of each input in inputs.json, written
// to hash_vectors.json: what tests/test_info_hashes.py holds ours to.
//
// Run from the repository root, with the reference encoders installed in a
// scratch directory (README.md beside this file):
//   NODE_PATH=/tmp/hashref/node_modules node tests/vectors/make_hash_vectors.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// ES modules ignore NODE_PATH: resolve the packages through require's lookup.
const require = createRequire(join(process.env.NODE_PATH ?? ".", "x.js"));
const { rgbaToThumbHash } = await import(require.resolve("thumbhash"));
const { encode } = await import(require.resolve("blurhash"));

const here = dirname(fileURLToPath(import.meta.url));
const inputs = JSON.parse(readFileSync(join(here, "inputs.json"), "utf8"));
const [componentsX, componentsY] = [4, 3];

const vectors = inputs.inputs.map((input) => {
  const raw = readFileSync(join(here, input.pixels));
  const rgba = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  const thumbhash = Buffer.from(rgbaToThumbHash(input.width, input.height, rgba)).toString("base64");
  const clamped = new Uint8ClampedArray(raw.buffer, raw.byteOffset, raw.byteLength);
  const blurhash = encode(clamped, input.width, input.height, componentsX, componentsY);
  return { ...input, thumbhash, blurhash };
});

const versions = Object.fromEntries(
  ["thumbhash", "blurhash"].map((name) => {
    const manifest = require.resolve(`${name}/package.json`);
    return [name, JSON.parse(readFileSync(manifest, "utf8")).version];
  }),
);
const document = {
  reference: versions,
  node: process.version,
  libvips: inputs.libvips,
  blurhash_components: [componentsX, componentsY],
  vectors,
};
writeFileSync(join(here, "hash_vectors.json"), JSON.stringify(document, null, 2) + "\n");
console.log(`wrote ${vectors.length} vectors`);
