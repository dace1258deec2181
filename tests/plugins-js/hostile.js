// A hostile JavaScript plugin for the gateway's tests (built by the test kit
// with plugins/template-js's runtime). Config `mode` picks the misbehaviour:
//   loop     spins forever
//   memory   allocates until the engine runs out of memory
//   throw    throws an Error
//   counter  forwards, counting its calls in a global (header x-calls)
//   async    answers through a promise ({ data: { async: true } })
//   reject   answers with a promise that rejects
//   (none)   forwards unchanged
// Config `validate = "loop"` makes validateConfig spin forever.

let calls = 0;

export function handle(event, config) {
  switch (config.mode) {
    case "loop":
      for (;;) {}
    case "memory": {
      const hog = [];
      for (;;) hog.push(new Array(1 << 16).fill(hog.length));
    }
    case "throw":
      throw new Error(`hostile plugin threw on purpose for ${event.type}`);
    case "async":
      return Promise.resolve(1).then(() => ({ data: { async: true } }));
    case "reject":
      return Promise.resolve(1).then(() => {
        throw new Error(`hostile plugin rejected on purpose for ${event.type}`);
      });
    case "counter":
      calls += 1;
      return { body: event.bytes, headers: { "x-calls": String(calls) } };
    default:
      return event;
  }
}

export function validateConfig(config) {
  if (config.validate === "loop") {
    for (;;) {}
  }
}
