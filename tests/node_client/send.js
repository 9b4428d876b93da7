// Sends traces to an OTLP/HTTP endpoint with the Node.js OpenTelemetry SDK.
//   node send.js URL SERVICE TRACES [proto|json] [TOKEN]
// proto: @opentelemetry/exporter-trace-otlp-proto; json: @opentelemetry/exporter-trace-otlp-http.
// Each trace: a server span "GET /orders/{id}" with a client child "SELECT orders" (an error
// with an exception event). Prints one JSON line per trace: its trace, root and child ids.
"use strict";
const { trace, SpanKind, SpanStatusCode, context } = require("@opentelemetry/api");
const { NodeTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-node");
const { resourceFromAttributes } = require("@opentelemetry/resources");

const [url, service, count, encoding, token] = process.argv.slice(2);
const { OTLPTraceExporter } = require(
  encoding === "json"
    ? "@opentelemetry/exporter-trace-otlp-http"
    : "@opentelemetry/exporter-trace-otlp-proto",
);
const exporter = new OTLPTraceExporter({
  url: url + "/v1/traces",
  headers: token ? { Authorization: "Bearer " + token } : {},
});
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": service, "host.name": "node-host-1" }),
  spanProcessors: [
    new BatchSpanProcessor(exporter, { maxQueueSize: 100000, maxExportBatchSize: 512 }),
  ],
});
const tracer = provider.getTracer("node-client", "1.0.0");

for (let i = 0; i < Number(count); i++) {
  const root = tracer.startSpan("GET /orders/{id}", {
    kind: SpanKind.SERVER,
    attributes: {
      "http.request.method": "GET",
      "http.route": "/orders/{id}",
      "http.response.status_code": 200,
      "order.id": i,
      "url.full": "https://shop.example/orders/" + i + "?token=NODE-SEKRET-" + i,
      "http.request.header.authorization": ["Bearer node-abcdefghijklmnop"],
    },
  });
  const child = tracer.startSpan(
    "SELECT orders",
    { kind: SpanKind.CLIENT, attributes: { "db.system": "postgresql", "db.rows": 3 } },
    trace.setSpan(context.active(), root),
  );
  child.recordException({ name: "QueryTimeout", message: "statement timeout" });
  child.setStatus({ code: SpanStatusCode.ERROR, message: "statement timeout" });
  child.end();
  root.end();
  const r = root.spanContext();
  const c = child.spanContext();
  console.log(JSON.stringify({ trace_id: r.traceId, root: r.spanId, child: c.spanId }));
}
provider.shutdown().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
