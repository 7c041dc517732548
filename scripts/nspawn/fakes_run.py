"""nspawn trial helper: the fake DNS (port written to /run/fakedns.port),
and, given "mx", a fake primary on 127.0.0.1:2526. Runs until killed."""
import sys, time
sys.path.insert(0, "/opt/fakes")
if sys.argv[1] == "dns":
    import dns
    d = dns.FakeDNS().start()
    open("/run/fakedns.port", "w").write(str(d.port))
else:
    import mx
    m = mx.FakeMX(port=2526).start()
    while not m.received:
        time.sleep(0.2)
    print("primary received:", m.received[0]["rcpts"], flush=True)
while True:
    time.sleep(3600)
