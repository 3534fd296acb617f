"""An exchange's client for the Halo Peg Exchange API, as exchanges wrote them for Python 2's xmlrpclib.

Ported to Python 3 by changing only the import (``import xmlrpclib`` -> ``import xmlrpc.client as xmlrpclib``).
Run it against ``make run`` (the devnet node with exchange mode); it pays a deposit from the devnet wallet
over the node's control RPC, so the whole flow runs on one machine:

    .venv/bin/python contrib/example_client.py [API URL] [node control URL]

The node control URL carries the credentials of the node's cookie file (DATADIR/.cookie, written at each
start), ``http://__cookie__:<hex>@127.0.0.1:55780``; by default they are read from data/devnet/.cookie.

Amounts of 2^31 satoshis (21.47483648 BAY) and more arrive as <i8>, which xmlrpc.client reads exactly; to
*send* them, pass a string of digits ("2500000000"): Python's client raises OverflowError for such an int (it
has no <i8> writer). Every argument is positional, the password after style or clear: pass those too.

Standard library only: the deposit address is derived from the key by contrib/bitbay_address.py, itself
standard library only (docs/api.md, "Deposit addresses").
"""

import sys
import time
import xmlrpc.client as xmlrpclib

from bitbay_address import address_from_wif

API = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:55779"

def node_url(datadir="data/devnet", port=55780):
    """The devnet's control RPC URL, with the user:password of its cookie file (basic auth, as bitcoind)."""
    with open(datadir + "/.cookie") as cookie_file:
        cookie = cookie_file.read().strip()
    return "http://%s@127.0.0.1:%d" % (cookie, port)


NODE = sys.argv[2] if len(sys.argv) > 2 else node_url()

HaloRPC = xmlrpclib.ServerProxy(API)
node = xmlrpclib.ServerProxy(NODE)

print("SetPassword:", HaloRPC.SetPassword("pw", ""))
print("StartExchange:", HaloRPC.StartExchange("pw", 1, 0))
while not HaloRPC.StartExchange("pw", 1, 1):
    time.sleep(0.2)

key, ok = HaloRPC.GenerateDepositAddress("pw")
print("GenerateDepositAddress:", ok, "(keep the key as a backup)")

# The customer pays: here the devnet wallet sends 25 BAY to the new address. The client derives the address
# from the key, as the original's demo did; a real exchange shows it to its customer.
spendable_before = set(HaloRPC.GetSpendable("", "pw"))
address = address_from_wif(key)
node.sendtoaddress(address, "2500000000")  # 25 BAY is above 2^31 satoshis: sent as a digit string
node.generate(1)


def wait_for(check, what, seconds=30.0):
    """Exchanges poll: the exchange applies each block moments after the node connects it."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


new = wait_for(lambda: sorted(set(HaloRPC.GetSpendable("", "pw")) - spendable_before), "the deposit")
print("GetSpendable: new deposit", new)
print("Deposit:", HaloRPC.Deposit("karen", new, "pw"))
node.generate(6)
wait_for(lambda: HaloRPC.GetDeposits(new[0], "pw")["registered"], "the credit")
print("GetDeposits:", HaloRPC.GetDeposits(new[0], "pw"))
print("GetBalance karen:", HaloRPC.GetBalance("karen", "pw"))
print("Trade karen -> dave:", HaloRPC.Trade("karen", 100000000, "dave", "liquid", "pw"))
print("GetBalance dave:", HaloRPC.GetBalance("dave", "pw"))
print("GetBalance exchange:", HaloRPC.GetBalance("exchange", "pw"))
print("GetCycle:", HaloRPC.GetCycle("pw"))

# Withdrawals: the exchange pays from its own addresses (exchangeaccounts: addresses of its wallet, the first
# receives the change) and sends the commission, less the network fee, to its fee account.
change_key, ok = HaloRPC.GenerateDepositAddress("pw")
change_address = address_from_wif(change_key)
commission = {"min": 10000000, "max": 1000000000, "percent": 0.001}
print("ExchangeSettings:", HaloRPC.ExchangeSettings([change_address], node.getnewaddress(), commission, "", "pw"))
print("GetSettings:", HaloRPC.GetSettings("pw"))
payee = node.getnewaddress()
ok, withdraw_id = HaloRPC.Withdraw("karen", 200000000, payee, "liquid", "pw", "karen-withdrawal-1")
print("Withdraw:", ok, withdraw_id)
print("Withdraw again with the same ID:", HaloRPC.Withdraw("karen", 200000000, payee, "liquid", "pw",
                                                           "karen-withdrawal-1"))
# Batches are built in the first part of each peg cycle and paid once confirmed; the devnet makes blocks on
# demand, so this client makes them until the withdrawal is complete.
status = HaloRPC.CheckWithdraw(withdraw_id, 0, "pw")
for _ in range(80):
    if status["status"] == "complete":
        break
    node.generate(1)
    time.sleep(0.3)
    status = HaloRPC.CheckWithdraw(withdraw_id, 0, "pw")
print("CheckWithdraw:", status["status"], "txid", status.get("txid"), "paid", status["paid"] - status["commission"])
print("CheckWithdraw clear:", HaloRPC.CheckWithdraw(withdraw_id, 1, "pw")["status"],
      HaloRPC.CheckWithdraw(withdraw_id, 1, "pw"))
