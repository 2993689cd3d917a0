#!/usr/bin/env python3
"""Replays the requests Blink makes of `settings_url`, step by step, as Blink builds them.

Sources (AGProjects, read for this replay; the lines that build each request are quoted):
* blink-cocoa `HistoryManager.py`: `get_last_calls` (the call-history poll, every 300 s),
  `updateTimer_` (chat journal push and delete), `startConnectionForIncomingReplication` (chat
  journal pull), `connectionDidFinishLoading_`, `updateLocalHistoryWithRemoteJournalId`,
  `addLocalHistoryFromRemoteJournalEntries` (what Blink reads of each reply);
  `AccountSettings.py`: `showSettingsForAccount_`, `showPSTNAccessforAccount_` (the web view).
* blink-qt `blink/accounts.py`: `ServerToolsWebView.query_items` and `load_account_page`.

Blink sends each request without credentials and answers the `401` challenge with the user part
and the password (Cocoa: `NSURLCredential.credentialWithUser_password_persistence_(
account.id.username, account.server.web_password or account.auth.password,
NSURLCredentialPersistenceNone)`, so every request is challenged; Qt: `auth.setUser(
self.account.id.username)` in QtWebEngine). Here Python's `urllib` `HTTPDigestAuthHandler` does
the same: it answers only a challenge, with its own Digest implementation, independent of the
server's.

Usage: replay.py SETTINGS_URL CA USER PASSWORD STEP DOMAIN [ARGS...]; prints one JSON object:
`{"status", "challenges", "content_type", "body", ...}` (what Blink would have seen) plus, for
the chat journal steps, what Blink's reply handling made of the reply.
"""

import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request


class CountingDigest(urllib.request.HTTPDigestAuthHandler):
    """urllib's Digest handler, counting the challenges, answering only the first as Blink:

        self.last_calls_connections[key]['authRequestCount'] += 1
        if self.last_calls_connections[key]['authRequestCount'] < 2:
            credential = NSURLCredential.credentialWithUser_password_persistence_(...)
            challenge.sender().useCredential_forAuthenticationChallenge_(credential, challenge)
        else:
            BlinkLogger().log_error("Error: invalid web authentication ...")
    """

    challenges = 0

    def http_error_401(self, req, fp, code, msg, headers):
        CountingDigest.challenges += 1
        if CountingDigest.challenges >= 2:
            return None  # a second challenge: the credentials were wrong; Blink gives up
        return super().http_error_401(req, fp, code, msg, headers)


def opener(settings_url, ca, user, password):
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, settings_url, user, password)
    context = ssl.create_default_context(cafile=ca)
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), CountingDigest(passwords)
    )


def url_with(settings_url, query_string):
    # Blink Cocoa: urllib.parse.urlunparse(account.server.settings_url[:4] + (query_string,)
    #              + account.server.settings_url[5:])
    parts = urllib.parse.urlparse(settings_url)
    return urllib.parse.urlunparse(parts[:4] + (query_string,) + parts[5:])


def fetch(open_, url, body=None):
    request = urllib.request.Request(url, data=body)
    if body is not None:
        # NSURLConnection sends a POST body without a Content-Type of Blink's as form data.
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with open_.open(request, timeout=15) as r:
            status, content_type, text = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, content_type, text = e.code, e.headers.get("Content-Type", ""), e.read()
    return {
        "status": status,
        "challenges": CountingDigest.challenges,
        "content_type": content_type,
        "body": text.decode("utf-8", "replace"),
    }


def cocoa_history(settings_url, domain, open_):
    # get_last_calls: query_string = "action=get_history&realm=%s" % account.id.domain
    return fetch(open_, url_with(settings_url, "action=get_history&realm=%s" % domain))


def cocoa_put(settings_url, domain, open_, instance_id, outgoing_entries):
    # updateTimer_: entries = json.dumps(outgoing_entries)  (a dict msgid -> {'data', 'id'})
    #   query_string = "action=put_journal_entries&realm=%s" % account.id.domain
    #   query_string_variables = {'uuid': settings.instance_id, 'data': entries}
    entries = json.dumps(outgoing_entries)
    query_string = "action=put_journal_entries&realm=%s" % domain
    body = urllib.parse.urlencode({"uuid": instance_id, "data": entries}).encode()
    seen = fetch(open_, url_with(settings_url, query_string), body)
    # updateLocalHistoryWithRemoteJournalId: success, else error_message; results[*] id and
    # journal_id (str(entry['journal_id'])).
    journal = json.loads(seen["body"])
    seen["blink"] = {"success": journal["success"]}
    if not journal["success"]:
        seen["blink"]["error_message"] = journal["error_message"]
    else:
        seen["blink"]["journal_ids"] = {
            entry["id"]: str(entry["journal_id"]) for entry in journal.get("results", [])
        }
    return seen


def cocoa_get(settings_url, domain, open_, instance_id, after_timestamp, with_summary):
    # startConnectionForIncomingReplication:
    #   query_string_variables = {'realm': account.id.domain, 'action': 'get_journal_entries',
    #                             'except_uuid': settings.instance_id,
    #                             'after_timestamp': after_timestamp}
    #   (summary=1 until the server's summary is known)
    #   query_string = "&".join(("%s=%s" % (key, value) for key, value in ...items()))
    variables = {
        "realm": domain,
        "action": "get_journal_entries",
        "except_uuid": instance_id,
        "after_timestamp": after_timestamp,
    }
    if with_summary:
        variables["summary"] = 1
    query_string = "&".join("%s=%s" % (k, v) for k, v in variables.items())
    seen = fetch(open_, url_with(settings_url, query_string))
    # addLocalHistoryFromRemoteJournalEntries: success, else error_message; summary[0] and
    # [-1] 'timestamp' (int()), each 'journal_id'; results[*] 'data', 'uuid', 'timestamp',
    # str('id'); the newest timestamp becomes the next after_timestamp.
    journal = json.loads(seen["body"])
    blink = {"success": journal["success"]}
    if not journal["success"]:
        blink["error_message"] = journal["error_message"]
    else:
        if "summary" in journal:
            summary = journal["summary"]
            if summary:
                int(summary[0]["timestamp"])
                int(summary[-1]["timestamp"])
            blink["summary_journal_ids"] = [str(r["journal_id"]) for r in summary]
        entries = []
        last = after_timestamp
        for entry in journal["results"]:
            data, uuid, timestamp, journal_id = (
                entry["data"], entry["uuid"], entry["timestamp"], str(entry["id"]))
            if last < timestamp:
                last = timestamp
            entries.append({"data": data, "uuid": uuid, "journal_id": journal_id})
        blink["entries"] = entries
        blink["last_journal_timestamp"] = last
    seen["blink"] = blink
    return seen


def cocoa_delete(settings_url, domain, open_, journal_ids):
    # updateTimer_: entries = json.dumps(list(delete_entries))  (journal ids, as str)
    #   query_string = "action=delete_journal_entries&realm=%s" % account.id.domain
    #   query_string_variables = {'data': entries}
    entries = json.dumps(list(journal_ids))
    query_string = "action=delete_journal_entries&realm=%s" % domain
    body = urllib.parse.urlencode({"data": entries}).encode()
    seen = fetch(open_, url_with(settings_url, query_string), body)
    journal = json.loads(seen["body"])
    seen["blink"] = {"success": journal["success"], "error_message": journal.get("error_message")}
    return seen


def cocoa_tab(settings_url, account_id, domain, open_, tab):
    # showSettingsForAccount_: "realm=%s&tab=settings&user_agent=blink" % account.id.domain
    # showPSTNAccessforAccount_: "realm=%s&tab=payments&user_agent=blink" % self._account.id
    realm = account_id if tab == "payments" else domain
    return fetch(open_, url_with(settings_url, "realm=%s&tab=%s&user_agent=blink" % (realm, tab)))


def qt_tab(settings_url, domain, open_, tab, task):
    # ServerToolsWebView: query_items in the order of __init__ (user_agent, tab, task, realm),
    # None values left out; url.setQuery(url_query) replaces settings_url's query.
    items = [("user_agent", "blink"), ("tab", tab), ("task", task), ("realm", domain)]
    query = "&".join("%s=%s" % (k, v) for k, v in items if v is not None)
    return fetch(open_, url_with(settings_url, query))


def main(argv):
    settings_url, ca, user, password, step, *args = argv[1:]
    domain = args.pop(0)
    account_id = "%s@%s" % (user, domain)
    open_ = opener(settings_url, ca, user, password)
    if step == "cocoa-history":
        out = cocoa_history(settings_url, domain, open_)
    elif step == "cocoa-put":
        instance_id, outgoing = args
        out = cocoa_put(settings_url, domain, open_, instance_id, json.loads(outgoing))
    elif step == "cocoa-get":
        instance_id, after, summary = args
        out = cocoa_get(settings_url, domain, open_, instance_id, int(after), summary == "1")
    elif step == "cocoa-delete":
        out = cocoa_delete(settings_url, domain, open_, json.loads(args[0]))
    elif step == "cocoa-tab":
        out = cocoa_tab(settings_url, account_id, domain, open_, args[0])
    elif step == "qt-tab":
        out = qt_tab(settings_url, domain, open_, args[0], args[1] if len(args) > 1 else None)
    else:
        raise SystemExit("unknown step %r" % step)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
