// Drives an MCP server through Cloakroom with the official TypeScript SDK client.
//
// Usage: node client.mjs URL TOKEN PLACEHOLDER
// Prints one JSON object with what happened, for the Rust test to check: the tool list,
// an echo call with a placeholder argument, a progress-reporting call, a denied call.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const [url, token, placeholder] = process.argv.slice(2);

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "cloakroom-e2e-node", version: "1.0.0" });
await client.connect(transport);

const textOf = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("");
const errorOf = (e) =>
  e instanceof McpError ? { code: e.code, message: e.message, data: e.data ?? null } : { thrown: String(e) };

const out = { protocol: transport.protocolVersion ?? null, session: transport.sessionId ?? null };
const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name).sort();
const echo = await client.callTool({ name: "echo", arguments: { text: `key=${placeholder}` } });
out.echo = { text: textOf(echo), isError: echo.isError ?? false };
const progress = [];
const slow = await client.callTool({ name: "slow", arguments: { text: placeholder, steps: 3 } }, undefined, {
  onprogress: (p) => progress.push(p),
});
out.slow = { text: textOf(slow), progress };
try {
  await client.callTool({ name: "drop_db", arguments: {} });
  out.drop_db = { ok: true };
} catch (e) {
  out.drop_db = errorOf(e);
}
await transport.terminateSession().catch(() => {});
await client.close();
console.log(JSON.stringify(out));
