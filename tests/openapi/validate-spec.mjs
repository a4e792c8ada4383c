// validate-spec.mjs - docs/openapi.yaml against the official OpenAPI 3.0
// JSON Schema, with every $ref resolved (@apidevtools/swagger-parser, pinned
// in package-lock.json).  scripts/check-source.sh runs it; the checks this
// schema cannot express (nullable beside a type, closed response objects)
// are tests/e2e/openapi_check.py's lint.
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-spec.mjs docs/openapi.yaml");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`check-source: ${file} is a valid OpenAPI ${api.openapi} document ` +
              `(swagger-parser, ${Object.keys(api.paths).length} paths)`);
} catch (e) {
  console.error(`check-source: ${file} fails OpenAPI validation:\n${e.message || e}`);
  process.exit(1);
}
