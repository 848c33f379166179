"""A bot written with the `irc` library (jaraco/irc on PyPI), as many IRC bots are: it
joins #lobby and #den and answers `!ping`, `!users` and `!ops` from what the library itself
understood of the server's replies (its channel tracking reads NAMES, JOIN, PART and
MODE), and leaves on `!quit`. Run by crates/server/tests/irc_bot.rs."""

import sys

import irc.bot


class PingBot(irc.bot.SingleServerIRCBot):
    def __init__(self, port):
        super().__init__([("127.0.0.1", port)], "pingbot", "Ping Bot")

    def on_welcome(self, connection, event):
        connection.join("#lobby")
        connection.join("#den")

    def on_join(self, connection, event):
        if event.source.nick == connection.get_nickname():
            connection.privmsg(event.target, "pingbot ready")

    def on_pubmsg(self, connection, event):
        text = event.arguments[0]
        channel = self.channels[event.target]
        if text == "!ping":
            connection.privmsg(event.target, "pong, " + event.source.nick)
        elif text == "!users":
            connection.privmsg(event.target, "users: " + " ".join(sorted(channel.users())))
        elif text == "!ops":
            connection.privmsg(event.target, "ops: " + " ".join(sorted(channel.opers())))
        elif text == "!quit":
            self.die("asked to leave")


if __name__ == "__main__":
    PingBot(int(sys.argv[1])).start()
