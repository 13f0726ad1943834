// Lists every page of an MCP server's tools through Cloakroom with the official
// TypeScript SDK client.
//
// Usage: node paginate.mjs URL TOKEN
// Prints {"pages": [{"tools": [names], "nextCursor": cursor or null}, ...]}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "cloakroom-e2e-paginate", version: "1.0.0" });
await client.connect(transport);

const pages = [];
let cursor;
do {
  const page = await client.listTools(cursor === undefined ? undefined : { cursor });
  pages.push({ tools: page.tools.map((t) => t.name), nextCursor: page.nextCursor ?? null });
  cursor = page.nextCursor;
} while (cursor !== undefined && pages.length < 10);
await client.close();
console.log(JSON.stringify({ pages }));
