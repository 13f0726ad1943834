"""Drives an MCP server through Cloakroom with the official Python SDK client.

Usage: python client.py URL TOKEN SCENARIO [ARGS...]
Prints one JSON object with what happened, for the Rust test to check.

Scenarios:
- main PLACEHOLDER: list tools; call echo, slow (with progress) and drop_db; call refund
  without an approval (expect a pending-approval error).
- approved APPROVAL_ID PLACEHOLDER: call refund with the Cloakroom-Approval header.
- plumbing TOOL...: connect, list tools, call each TOOL with no arguments (echo with a
  text); a refused connection or listing is reported as `connect` / `list`.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def error_json(e: MCPError) -> dict:
    err = e.error
    return {"code": err.code, "message": err.message, "data": err.data}


def text_of(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def plumbing(url: str, headers: dict, tools: list, out: dict) -> None:
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        try:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                try:
                    listed = await client.list_tools()
                except MCPError as e:
                    out["list"] = error_json(e)
                    return
                out["tools"] = sorted(t.name for t in listed.tools)
                out["calls"] = {}
                for name in tools:
                    args = {"text": "hi"} if name == "echo" else {}
                    try:
                        r = await client.call_tool(name, args)
                        out["calls"][name] = {"ok": not r.is_error}
                    except MCPError as e:
                        out["calls"][name] = error_json(e)
        except MCPError as e:
            out["connect"] = error_json(e)
        except Exception as e:  # the SDK wraps transport failures in task groups
            if "tools" not in out:
                out["connect"] = {"thrown": repr(e)}
            else:
                raise


async def main() -> None:
    url, token, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
    headers = {"Authorization": f"Bearer {token}"}
    if scenario == "approved":
        headers["Cloakroom-Approval"] = sys.argv[4]
    out: dict = {}
    if scenario == "plumbing":
        await plumbing(url, headers, sys.argv[4:], out)
        print(json.dumps(out))
        return
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            out["protocol"] = client.protocol_version
            if scenario == "main":
                placeholder = sys.argv[4]
                tools = await client.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
                r = await client.call_tool("echo", {"text": f"key={placeholder}"})
                out["echo"] = {"text": text_of(r), "is_error": r.is_error}
                progress: list = []

                async def on_progress(p, total, message):
                    progress.append({"progress": p, "total": total, "message": message})

                r = await client.call_tool("slow", {"text": placeholder, "steps": 3}, progress_callback=on_progress)
                out["slow"] = {"text": text_of(r), "progress": progress}
                try:
                    await client.call_tool("drop_db", {})
                    out["drop_db"] = {"ok": True}
                except MCPError as e:
                    out["drop_db"] = error_json(e)
                try:
                    await client.call_tool("refund", {"amount": 500, "text": placeholder})
                    out["refund"] = {"ok": True}
                except MCPError as e:
                    out["refund"] = error_json(e)
            elif scenario == "approved":
                placeholder = sys.argv[5]
                r = await client.call_tool("refund", {"amount": 500, "text": placeholder})
                out["refund"] = {"text": text_of(r), "is_error": r.is_error}
            else:
                raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))


asyncio.run(main())
