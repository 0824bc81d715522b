// The chat actor: login, join and leave rooms, say (push to the room),
// private messages, who is online.  One actor per connection; its state
// (name and rooms) follows it from worker to worker.
import { ReplyError, SocketActor } from 'whirlwind';

const NOT_LOGGED_IN = 10001;
const NAME_TAKEN = 10002;
const NO_SUCH_USER = 10003;

// Names are global, so they live in a group per name: "user:<name>" has
// one member, the connection logged in with it.  (The check and the join
// are not one atomic step: two logins with one name at the same instant
// can both win.  A real server would reserve names on the main thread.)
const userGroup = (name) => `user:${name}`;

export default class Chat extends SocketActor {
  initialState() {
    return { name: null, rooms: [] };
  }

  static handlers = {
    async login({ name }, ctx) {
      if (typeof name !== 'string' || !/^[\w.-]{1,32}$/.test(name)) throw new ReplyError(10000, 'a name is 1-32 letters, digits, _ . -');
      if (this.state.name === name) return { name };
      if ((await ctx.main.groupMembers(userGroup(name))).length > 0) throw new ReplyError(NAME_TAKEN, `${name} is taken`);
      if (this.state.name) ctx.leave(userGroup(this.state.name));
      this.state.name = name;
      ctx.join(userGroup(name));
      ctx.join('lobby:everyone');
      ctx.pushToGroup('lobby:everyone', 'online', { name }, { exceptSelf: true });
      return { name, online: await ctx.main.onlineCount() };
    },

    join({ room }, ctx) {
      const name = this.#need();
      if (!this.state.rooms.includes(room)) this.state.rooms.push(room);
      ctx.join(`room:${room}`);
      ctx.pushToGroup(`room:${room}`, 'joined', { room, name }, { exceptSelf: true });
      return { room, rooms: this.state.rooms };
    },

    leave({ room }, ctx) {
      const name = this.#need();
      this.state.rooms = this.state.rooms.filter((r) => r !== room);
      ctx.leave(`room:${room}`);
      ctx.pushToGroup(`room:${room}`, 'left', { room, name });
      return { room, rooms: this.state.rooms };
    },

    say({ room, text }, ctx) {
      const name = this.#need();
      if (!this.state.rooms.includes(room)) throw new ReplyError(10004, `join ${room} first`);
      // Everyone in the room, the sender included (after this reply).
      ctx.pushToGroup(`room:${room}`, 'said', { room, name, text: String(text) });
      return { ok: true };
    },

    async tell({ to, text }, ctx) {
      const name = this.#need();
      const [conn] = await ctx.main.groupMembers(userGroup(to));
      if (conn === undefined) throw new ReplyError(NO_SUCH_USER, `${to} is not online`);
      ctx.pushTo(conn, 'told', { from: name, text: String(text) });
      return { ok: true };
    },

    async who(_body, ctx) {
      const conns = await ctx.main.groupMembers('lobby:everyone');
      return { online: conns.length, me: this.state.name, rooms: this.state.rooms };
    },
  };

  onClosed(_info, ctx) {
    if (this.state.name) ctx.pushToGroup('lobby:everyone', 'offline', { name: this.state.name });
  }

  #need() {
    if (!this.state.name) throw new ReplyError(NOT_LOGGED_IN, 'log in first');
    return this.state.name;
  }
}
