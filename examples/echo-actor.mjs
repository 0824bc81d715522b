// The echo actor: `echo` replies with the request's body (and attachment)
// after burning `workUs` microseconds of CPU, read from this module's URL
// (`echo-actor.mjs?workUs=100`), so main thread and workers agree.
import { SocketActor } from 'whirlwind';

const workUs = Number(new URL(import.meta.url).searchParams.get('workUs') ?? 0);

// The same busy wait as the benchmark's rivals (bench/servers/common.mjs):
// performance.now() allocates nothing, where hrtime.bigint() makes a BigInt
// per call and so brings the garbage collector into the measured work.
function burn(us) {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

export default class Echo extends SocketActor {
  static handlers = {
    echo(body, ctx) {
      if (workUs > 0) burn(workUs);
      if (ctx.attachment.length > 0) ctx.reply(body, { attachment: ctx.attachment });
      return body;
    },
  };
}
