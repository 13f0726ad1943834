// Connects to an MCP server through Cloakroom with the official TypeScript SDK client
// (the 2025-11-25 generation: initialize, notifications/initialized, Mcp-Session-Id, the
// session's GET stream and DELETE), lists the tools, calls each tool named on the command
// line with no arguments and ends the session.
//
// Usage: node plumbing.mjs URL TOKEN [TOOL...]
// Prints one JSON object for the Rust test (bins/cloakroomd/tests/mcp_policy_plumbing.rs):
// `connect` is the error when the handshake fails (nothing else is tried then).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const [url, token, ...tools] = process.argv.slice(2);

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "cloakroom-e2e-plumbing", version: "1.0.0" });
const errorOf = (e) =>
  e instanceof McpError ? { code: e.code, message: e.message, data: e.data ?? null } : { thrown: String(e) };

const out = {};
try {
  await client.connect(transport);
} catch (e) {
  out.connect = errorOf(e);
  console.log(JSON.stringify(out));
  process.exit(0);
}
out.protocol = transport.protocolVersion ?? null;
out.session = transport.sessionId ?? null;
out.ping = await client.ping().then(() => "ok", errorOf);
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.calls = {};
for (const name of tools) {
  out.calls[name] = await client.callTool({ name, arguments: name === "echo" ? { text: "hi" } : {} }).then(
    (r) => ({ ok: !r.isError }),
    errorOf,
  );
}
// DELETE ends the session; a refusal here would throw.
out.terminate = await transport.terminateSession().then(() => "ok", errorOf);
await client.close();
console.log(JSON.stringify(out));
