// The export bench's baseline: a bare JetStream publisher with the same
// client library, window and message size as fanotify-export, against the
// same nats-server. Prints "ready", then on its own one JSON line:
// acknowledged publishes/s, publish-to-ack latency p50/p99, CPU per message.
//   node dist/bench/export-publisher.js URL STREAM SUBJECT COUNT WINDOW BYTES
import { headers } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';

async function main(): Promise<void> {
  const [url, stream, subject, countArg, windowArg, bytesArg] = process.argv.slice(2);
  const count = Number(countArg);
  const window = Number(windowArg);
  const payload = new Uint8Array(Number(bytesArg)).fill(0x2a);
  const nc = await connect({ servers: url.replace('nats://', '') });
  const js = jetstream(nc);
  await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${subject.split('.')[0]}.>`], storage: StorageType.File });
  process.stdout.write('ready\n');
  const latencies = new Float64Array(count);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const send = (): void => {
      const i = next++;
      // The exporter's headers, the same four and the record kind, so the messages are the same size on the wire.
      const h = headers();
      h.set('Fanotify-Node', 'bench');
      h.set('Fanotify-Watch', 'bench');
      h.set('Fanotify-Sequence', String(i + 1));
      h.set('Fanotify-Boot-Id', '00000000-0000-0000-0000-000000000000');
      h.set('Fanotify-Record', 'event');
      const started = performance.now();
      js.publish(subject, payload, { msgID: `bench/bench/${i + 1}`, headers: h, expect: { streamName: stream }, retries: 0 }).then(() => {
        latencies[i] = performance.now() - started;
        if (++done === count) resolve();
        else if (next < count) send();
      }, reject);
    };
    for (let i = 0; i < Math.min(window, count); i++) send();
  });
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  await nc.close();
  process.stdout.write(
    `${JSON.stringify({ acked: count, acked_per_s: count / secs, p50_ms: sorted[Math.floor(count * 0.5)], p99_ms: sorted[Math.floor(count * 0.99)], cpu_us_per_msg: ((cpu.user + cpu.system) / count) })}\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`export-publisher: ${err.message}\n`);
  process.exit(1);
});
