// An MCP server whose tools/list is paginated, built with the official TypeScript SDK's
// low-level Server (stateless streamable HTTP, SSE responses).
//
// Usage: node paginated-server.mjs PORT CURSORS_LOG [sse|json]
// (responses as SSE streams, the default, or as plain JSON bodies).
// Pages: (no cursor) echo, drop_db -> "page-2"; "page-2" drop_table -> "page-3";
// "page-3" slow (last page). Every cursor a tools/list request carries is appended to
// CURSORS_LOG, so the test can prove the cursors reached the server unchanged.
import { appendFileSync } from "node:fs";
import { createServer } from "node:http";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [port, cursorsLog, mode = "sse"] = process.argv.slice(2);

const tool = (name) => ({ name, description: `the ${name} tool`, inputSchema: { type: "object", properties: {} } });
const PAGES = {
  "": { tools: [tool("echo"), tool("drop_db")], nextCursor: "page-2" },
  "page-2": { tools: [tool("drop_table")], nextCursor: "page-3" },
  "page-3": { tools: [tool("slow")] },
};

function mcpServer() {
  const server = new Server({ name: "cloakroom-paginated", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async (request) => {
    const cursor = request.params?.cursor ?? "";
    appendFileSync(cursorsLog, `${cursor || "-"}\n`);
    const page = PAGES[cursor];
    if (!page) throw new Error(`unknown cursor ${cursor}`);
    return page;
  });
  server.setRequestHandler(CallToolRequestSchema, async (request) => ({
    content: [{ type: "text", text: `called ${request.params.name}` }],
  }));
  return server;
}

createServer(async (req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: mode === "json",
  });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res);
}).listen(Number(port), "127.0.0.1");
