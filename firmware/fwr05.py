# REPL (docs/protocol.md 4), run by fwd from this file: answered first,
# then Ctrl-C back on and the UART given back to the REPL; -1 makes fwd
# leave its loop (main.py returns), so `ndyn flash` can use the raw REPL.


def do(me, b, s, n):
    me.reply(0x85, s, 0)
    M, U = me.P[6], me.P[7]
    if M:
        M.kbd_intr(3)
    if U:
        U.init(115200)
    return -1
