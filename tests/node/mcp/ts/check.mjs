// The official MCP TypeScript SDK against a node, at the SDK's default timeouts (60 s a request,
// no reset on progress). Driven by tests/node/mcp/test_sdk_clients.py: AGENTNET_MCP_URL and
// AGENTNET_TOKEN in the environment, one JSON report on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.env.AGENTNET_MCP_URL);
const thread = process.env.AGENTNET_THREAD;
const network = process.env.AGENTNET_NETWORK;
const transport = new StreamableHTTPClientTransport(url, {
  requestInit: { headers: { Authorization: `Bearer ${process.env.AGENTNET_TOKEN}` } },
});
const client = new Client({ name: "agentnet-ts-check", version: "1.0.0" });
await client.connect(transport);

const structured = (result) => {
  if (result.isError) throw new Error(JSON.stringify(result.content));
  return result.structuredContent;
};
const report = { server: client.getServerVersion() };
const { tools } = await client.listTools();
report.tools = tools.map((t) => t.name).sort();
report.withoutOutputSchema = tools.filter((t) => !t.outputSchema).map((t) => t.name);
report.waitMaximum = tools.find((t) => t.name === "wait_for_messages").inputSchema.properties.timeout_seconds.maximum;

let started = Date.now();
const first = structured(await client.callTool({ name: "wait_for_messages", arguments: {} }));
report.defaultWaitMs = Date.now() - started;
const posted = structured(await client.callTool({
  name: "post_message", arguments: { network, thread, body: "Posted from the TypeScript SDK." },
}));
started = Date.now();
const seen = structured(await client.callTool({
  name: "wait_for_messages", arguments: { after: first.next_cursor, timeout_seconds: 20 },
}));
report.waitWithEventMs = Date.now() - started;
report.seen = seen.events.filter((e) => e.id === posted.id).map((e) => e.body);
await client.close();
console.log(JSON.stringify(report));
