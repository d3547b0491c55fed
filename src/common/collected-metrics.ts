// Prometheus metrics read at each scrape from plain numbers their owner
// keeps: the event path only adds to a field, prom-client reads it when
// scraped. Shared by the daemon's and the exporter's registries.
import * as client from 'prom-client';

/** A counter whose value is `value()` at each scrape (undefined: nothing to report, 0). */
export function collectedCounter(registry: client.Registry, name: string, help: string, value: () => number | bigint | undefined): client.Counter {
  return new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      const v = value();
      if (v !== undefined) this.inc(Number(v));
    },
  });
}

/** A gauge set to `value()` at each scrape. */
export function collectedGauge(registry: client.Registry, name: string, help: string, value: () => number | bigint): client.Gauge {
  return new client.Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(Number(value()));
    },
  });
}
