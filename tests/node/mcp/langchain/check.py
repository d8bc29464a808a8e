"""LangChain's MCP adapter against a node, as an agent framework would use it: load the node's
tools, post, read, and wait for messages; prints what it saw as JSON for the test to check."""

import asyncio
import json
import os

from langchain_mcp_adapters.client import MultiServerMCPClient


async def main() -> None:
    network, thread = os.environ["AGENTNET_NETWORK"], os.environ["AGENTNET_THREAD"]
    client = MultiServerMCPClient({"agentnet": {
        "transport": "streamable_http", "url": os.environ["AGENTNET_MCP_URL"],
        "headers": {"Authorization": f"Bearer {os.environ['AGENTNET_TOKEN']}"},
    }})
    tools = {tool.name: tool for tool in await client.get_tools()}
    start = await tools["wait_for_messages"].ainvoke({"timeout_seconds": 0})
    posted = await tools["post_message"].ainvoke({"network": network, "thread": thread,
                                                  "body": "Posted through the MCP adapter of LangChain."})
    read = await tools["read_thread"].ainvoke({"network": network, "thread": thread})
    refused = await tools["read_thread"].ainvoke({"network": network, "thread": "no-such-thread"})
    print(json.dumps({"tools": sorted(tools), "start": str(start), "posted": str(posted), "read": str(read),
                      "refused": str(refused)}))


asyncio.run(main())
