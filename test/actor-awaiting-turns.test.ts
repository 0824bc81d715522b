// A turn whose handler awaits outlives its task: the task returns when the
// synchronous run of its turns ends, so its other turns' answers leave at
// once and its worker takes other tasks; the awaiting turn's answer comes
// on the worker's late port when it ends.  It still holds its connection
// (nothing else of that connection starts), a crash of its worker fails it,
// and a worker stuck after the await is stopped by the late watchdog.
import { describe, expect, it } from 'vitest';
import { ErrorCode, type TurnFailure } from '../src/index.js';
import { client, codeOf, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

describe('actor turns that await', () => {
  it("on a single worker, a long await holds neither other connections' answers nor the worker", async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const [a, b, c] = await Promise.all([client(s), client(s), client(s)]);
    let slowDone = false;
    const slow = a.request('sleep', { ms: 1500, value: 'slow' }).then((r) => {
      slowDone = true;
      return r.body;
    });
    await new Promise((r) => setTimeout(r, 50)); // a's turn is awaiting
    // Turns of other connections, several tasks' worth, all answered while a's awaits.
    for (let i = 0; i < 20; i++) {
      const [x, y] = await Promise.all([b.request('echo', `b${i}`), c.request<{ n: number }>('count')]);
      expect(x.body).toBe(`b${i}`);
      expect(y.body.n).toBe(i + 1);
    }
    expect(slowDone).toBe(false);
    expect(await slow).toBe('slow');
    expect(s.stats().tasksInFlight).toBe(0);
  });

  it("keeps one connection's order: its next request waits for the awaiting turn, and sees its state", async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 2 });
    const a = await client(s);
    const order: string[] = [];
    const first = a.request('sleep', { ms: 200, value: 'first' }).then((r) => order.push(r.body as string));
    const second = a.request<{ n: number }>('count').then((r) => order.push(`count ${r.body.n}`));
    const third = a.request('echo', 'third').then((r) => order.push(r.body as string));
    await Promise.all([first, second, third]);
    expect(order).toEqual(['first', 'count 1', 'third']);
  });

  it('a crash of the worker fails the turns awaiting on it; their connections carry on', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const failed: TurnFailure[] = [];
    s.on('turnFailed', (f: TurnFailure) => failed.push(f));
    const [a, b] = await Promise.all([client(s), client(s)]);
    expect((await b.request<{ n: number }>('count')).body.n).toBe(1);
    const awaiting = codeOf(b.request('sleep', { ms: 5000, value: 'never' }));
    await new Promise((r) => setTimeout(r, 50));
    expect(await codeOf(a.request('crash'))).toBe(ErrorCode.INTERNAL);
    expect(await awaiting).toBe(ErrorCode.INTERNAL);
    expect(failed.map((f) => f.action).sort()).toEqual(['crash', 'sleep']);
    // b lives on, its state as the last turn that finished left it.
    expect((await b.request<{ n: number }>('count')).body.n).toBe(2);
    expect((await a.request('echo', 'after')).body).toBe('after');
  });

  it('a worker stuck in a loop after an await is stopped: that request gets TIMEOUT, the server carries on', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1, handlerTimeoutMs: 200 });
    const failed: TurnFailure[] = [];
    s.on('turnFailed', (f: TurnFailure) => failed.push(f));
    const a = await client(s);
    expect(await codeOf(a.request('loopAfterAwait'))).toBe(ErrorCode.TIMEOUT);
    expect(failed).toEqual([expect.objectContaining({ action: 'loopAfterAwait', code: ErrorCode.TIMEOUT })]);
    expect((await a.request('echo', 'after')).body).toBe('after');
  });

  it('a worker past minWorkers that holds an awaiting turn is not retired as idle; an idle one still is', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 2, workerIdleTimeoutMs: 400, handlerTimeoutMs: 0 });
    const [a, b] = await Promise.all([client(s), client(s)]);
    // Two tasks at once: the pool grows to its second worker.
    await Promise.all([a.request('burn', { ms: 100 }), b.request('burn', { ms: 100 })]);
    expect(s.stats().workers).toBe(2);
    // a's turn awaits on one worker, which has no task from now on (to piscina
    // it is idle at once); b's keeps the other busy for longer than the timeout.
    const awaiting = a.request('sleep', { ms: 1500, value: 'kept' }).then((r) => r.body, (e: unknown) => e);
    expect((await b.request('burn', { ms: 600 })).body).toBe(600);
    expect(await awaiting).toBe('kept');
    // The worker that ran b's turn has had nothing since: it is retired.
    const deadline = Date.now() + 5000;
    while (s.stats().workers > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(s.stats().workers).toBe(1);
    expect((await a.request('echo', 'after')).body).toBe('after');
    expect((await b.request('echo', 'after')).body).toBe('after');
  });

  it('nor is one whose awaiting turn belongs to a connection that has closed: the handler runs on after its await', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 2, workerIdleTimeoutMs: 300, handlerTimeoutMs: 0 });
    const [a, b, c] = await Promise.all([client(s), client(s), client(s)]);
    const bConn = (await b.request<{ conn: number }>('whoami')).body.conn;
    const kicked = new Promise<number>((resolve) => s.on('close', (conn: number) => conn === bConn && resolve(performance.now())));
    await Promise.all([a.request('burn', { ms: 100 }), c.request('burn', { ms: 100 })]);
    expect(s.stats().workers).toBe(2);
    const sent = performance.now();
    void a.request('sleepThenKick', { ms: 1200, conn: bConn, reason: 'after the await' }).catch(() => undefined);
    const busy = c.request('burn', { ms: 500 });
    await new Promise((r) => setTimeout(r, 50));
    await a.close(); // a's turn awaits on, for a connection that is gone
    expect((await busy).body).toBe(500);
    // Had its worker been stopped, b would never be closed.
    const at = await Promise.race([kicked, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
    expect(at, 'b was not closed: the awaiting handler did not run on').not.toBe(-1);
    expect(at - sent).toBeGreaterThan(1100);
    expect((await c.request('echo', 'after')).body).toBe('after');
  });

  it('workers retired as idle between bursts: every request is answered, in order, with its state', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 2, workerIdleTimeoutMs: 40 });
    const [a, b, c] = await Promise.all([client(s), client(s), client(s)]);
    let retired = 0;
    let count = 0;
    for (let round = 0; round < 8; round++) {
      // A burst grows the pool (two tasks at once), while c counts on.
      const [x, y, z] = await Promise.all([a.request('burn', { ms: 30 }), b.request('burn', { ms: 30 }), c.request<{ n: number }>('count')]);
      expect([x.body, y.body, z.body.n]).toEqual([30, 30, ++count]);
      const grown = s.stats().workers;
      // Then quiet but for c, past the idle timeout: the second worker goes.
      const until = Date.now() + 150;
      while (Date.now() < until) expect((await c.request<{ n: number }>('count')).body.n).toBe(++count);
      if (grown === 2 && s.stats().workers === 1) retired++;
    }
    expect(retired).toBeGreaterThan(0);
  });

  it('close() waits for a turn that awaits, then answers it', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const a = await client(s);
    const slow = a.request('sleep', { ms: 300, value: 'done' });
    await new Promise((r) => setTimeout(r, 50));
    const closed = s.close({ deadlineMs: 5000 });
    expect((await slow).body).toBe('done');
    await closed;
  });
});
