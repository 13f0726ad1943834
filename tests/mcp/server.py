"""A small MCP server for Cloakroom's end-to-end tests, built with the official Python SDK.

Usage: python server.py PORT RECEIVED_LOG

Tools:
- echo(text): returns the text it received.
- slow(text, steps): reports progress `steps` times (each message carries the text it
  received), then returns the text. Served over SSE, so progress streams.
- refund(amount, text): returns "refunded <amount> with <text>" (policy asks approval).
- drop_db(): returns "dropped" (policy denies it and hides it from tools/list).

Every text a tool receives is appended to RECEIVED_LOG, so the test can prove that the
real secret (not the placeholder) reached the tool.
"""

import asyncio
import sys

from mcp.server.mcpserver import Context, MCPServer

PORT = int(sys.argv[1])
RECEIVED_LOG = sys.argv[2]

server = MCPServer("cloakroom-test-tools")


def received(text: str) -> None:
    with open(RECEIVED_LOG, "a", encoding="utf-8") as f:
        f.write(text + "\n")


@server.tool()
def echo(text: str) -> str:
    """Returns the text."""
    received(text)
    return text


@server.tool()
async def slow(text: str, steps: int, ctx: Context) -> str:
    """Reports progress, then returns the text."""
    received(text)
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1} with {text}")
        await asyncio.sleep(0.05)
    return text


@server.tool()
def refund(amount: int, text: str) -> str:
    """Refunds (needs approval)."""
    received(text)
    return f"refunded {amount} with {text}"


@server.tool()
def drop_db() -> str:
    """Denied by policy."""
    received("drop_db")
    return "dropped"


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=PORT)
