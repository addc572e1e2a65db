/* The os-update Cockpit page: a view of os-updated's D-Bus API
 * (org.osupdate.OSUpdate1, see docs/daemon.md). Everything it shows comes
 * from the daemon, and every action is a daemon transaction; the page
 * decides nothing itself, not even who may act (GetAuthorizations). */
(function () {
    "use strict";

    const BUS = "org.osupdate.OSUpdate1";
    const PATH = "/org/osupdate/OSUpdate1";
    const SYSROOT = BUS + ".Sysroot";
    const TXN = BUS + ".Transaction";
    const TXN_PREFIX = PATH + "/Transaction";
    const HISTORY_LIMIT = 20;

    const POLICIES = {
        none: "Nothing is done automatically.",
        check: "Updates are checked for daily and shown here.",
        stage: "Updates are downloaded and staged daily; they apply at the next reboot.",
        apply: "Updates are downloaded, deployed and the machine reboots into them.",
    };

    let client = null;
    let auth = null; // api.Authorizations of this page's connection
    let status = null; // api.Status
    let txn = null; // {path, kind, initiator, finished}
    let refreshing = null;
    let refreshAgain = false;
    let canSetPolicy = false; // the daemon has SetAutomaticUpdates
    const POLICY_KIND = "automatic"; // its polkit action

    function $(id) { return document.getElementById(id); }

    /* el builds an element; children are nodes or text (never HTML). */
    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false)
                continue;
            if (k === "class")
                e.className = v;
            else
                e.setAttribute(k, v === true ? "" : v);
        }
        for (const c of children.flat(Infinity)) {
            if (c === undefined || c === null || c === false)
                continue;
            e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
        }
        return e;
    }

    function short(checksum) { return checksum ? checksum.slice(0, 12) : ""; }

    function bytes(n) {
        const units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let i = 0;
        while (n >= 1024 && i < units.length - 1) {
            n /= 1024;
            i++;
        }
        return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
    }

    function duration(s) {
        s = Math.round(s);
        if (s < 60)
            return s + " s";
        const m = Math.floor(s / 60);
        return m < 60 ? m + " min " + (s % 60) + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
    }

    function when(unix) { return unix ? new Date(unix * 1000).toLocaleString() : ""; }

    function errorText(ex) {
        if (!ex)
            return "unknown error";
        return ex.message || cockpit.message(ex);
    }

    function showError(text) {
        const e = $("error");
        e.textContent = text || "";
        e.hidden = !text;
    }

    /* variants turns {key: bool|string[]} into the a{sv} the daemon takes. */
    function variants(opts) {
        const out = {};
        for (const [k, v] of Object.entries(opts))
            out[k] = Array.isArray(v) ? cockpit.variant("as", v) : cockpit.variant("b", !!v);
        return out;
    }

    function sysrootCall(method, args, type) {
        return client.call(PATH, SYSROOT, method, args, type !== undefined ? { type } : undefined);
    }

    /* Authorization, as the daemon decides it for this connection. A
     * "challenge" (polkit would ask for an administrator's password) counts
     * as no: Cockpit's way to act as an administrator is its
     * administrative access, which makes this connection root's. */
    function allowed(kind) {
        return !!auth && auth.actions[kind] === "yes";
    }

    function denyReason() {
        return auth && auth.reason ? auth.reason : "You are not authorized to change the system.";
    }

    function current(deployments) {
        return deployments.find(d => d.booted) || deployments.find(d => d.default) || deployments[0] || null;
    }

    /* ---- rendering ---- */

    function roleBadges(d) {
        const roles = [];
        if (d.booted)
            roles.push(["booted", "Booted"]);
        if (d.default)
            roles.push(["default", "Default"]);
        if (d.staged)
            roles.push(["staged", "Staged"]);
        if (d.pending)
            roles.push(["pending", "Pending"]);
        if (d.rollback)
            roles.push(["rollback", "Rollback"]);
        if (d.pinned)
            roles.push(["pinned", "Pinned"]);
        return roles.map(([cls, label]) => el("span", { class: "osu-badge osu-badge-" + cls, "data-role": cls }, label));
    }

    function diffBlock(diff) {
        if (!diff)
            return null;
        if (diff.error)
            return el("p", { class: "osu-muted osu-diff" }, "Package changes unknown: " + diff.error);
        const n = diff.added.length + diff.removed.length + diff.upgraded.length + diff.downgraded.length;
        if (n === 0)
            return el("p", { class: "osu-muted osu-diff" }, "Same packages as the current deployment.");
        const parts = [];
        if (diff.upgraded.length)
            parts.push(diff.upgraded.length + " upgraded");
        if (diff.downgraded.length)
            parts.push(diff.downgraded.length + " downgraded");
        if (diff.added.length)
            parts.push(diff.added.length + " added");
        if (diff.removed.length)
            parts.push(diff.removed.length + " removed");
        const items = [];
        for (const c of diff.upgraded)
            items.push(el("li", { class: "osu-pkg-upgraded" }, c.from + " → " + c.to));
        for (const c of diff.downgraded)
            items.push(el("li", { class: "osu-pkg-downgraded" }, c.from + " → " + c.to));
        for (const p of diff.added)
            items.push(el("li", { class: "osu-pkg-added" }, "+ " + p));
        for (const p of diff.removed)
            items.push(el("li", { class: "osu-pkg-removed" }, "− " + p));
        return el("details", { class: "osu-diff", open: n <= 12 },
                  el("summary", {}, "Package changes from the current deployment: " + parts.join(", ")),
                  el("ul", { class: "osu-pkgs" }, items));
    }

    function renderDeployments(diffs) {
        const box = $("deployments");
        box.replaceChildren();
        const deps = status.deployments || [];
        if (deps.length === 0) {
            box.append(el("p", { class: "osu-muted" }, "No deployments."));
            return;
        }
        for (const d of deps) {
            const rows = [
                ["Commit", el("code", { title: d.checksum }, short(d.checksum))],
                ["Subject", d.subject || ""],
                ["Origin", d.origin || ""],
                ["Committed", when(d.timestamp)],
            ];
            if (d["base-checksum"])
                rows.push(["Base commit", el("code", {}, short(d["base-checksum"]))]);
            if (d["layered-packages"] && d["layered-packages"].length)
                rows.push(["Layered packages", d["layered-packages"].join(", ")]);
            if (d["removed-base-packages"] && d["removed-base-packages"].length)
                rows.push(["Removed base packages", d["removed-base-packages"].join(", ")]);
            if (d["replaced-base-packages"] && d["replaced-base-packages"].length)
                rows.push(["Replaced base packages", d["replaced-base-packages"].join(", ")]);
            if (d["container-image-reference"])
                rows.push(["Image", d["container-image-reference"]]);
            const dl = el("dl", { class: "osu-fields" },
                          rows.filter(r => r[1] !== "").map(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k.toLowerCase() }, v)]));
            box.append(el("article", {
                class: "osu-deployment" + (d.booted ? " osu-deployment-booted" : ""),
                "data-checksum": d.checksum,
                "data-version": d.version || "",
                "data-roles": roleBadges(d).map(b => b.dataset.role).join(" "),
            },
                          el("header", {},
                             el("span", { class: "osu-version" }, (d.osname || "") + " " + (d.version || short(d.checksum))),
                             roleBadges(d)),
                          dl, diffBlock(diffs[d.checksum])));
        }
    }

    function renderSummary() {
        const deps = status.deployments || [];
        const booted = deps.find(d => d.booted);
        const cur = current(deps);
        let text;
        if (booted)
            text = "Running " + booted.osname + " " + (booted.version || short(booted.checksum)) + ".";
        else if (cur)
            text = "No deployment is booted from this sysroot; the default is " + cur.osname + " " + (cur.version || short(cur.checksum)) + ".";
        else
            text = "Nothing is deployed.";
        $("summary").textContent = text;

        const cu = status["cached-update"];
        const info = $("update-info");
        const deployed = cu && deps.find(d => d.checksum === cu.checksum && !d.rollback);
        if (cu && cu.available && deployed)
            info.textContent = "The latest version (" + (cu.version || short(cu.checksum)) + ") is deployed" + (deployed.booted ? "." : "; it runs after a reboot.");
        else if (cu && cu.available)
            info.textContent = "Update available: " + (cu.version || short(cu.checksum)) + " (" + short(cu.checksum) + "), checked " + when(cu["checked-at"]) + ".";
        else if (cu)
            info.textContent = "No update available (checked " + when(cu["checked-at"]) + ").";
        else
            info.textContent = "Not checked for updates yet.";
        info.dataset.available = cu && cu.available && !deployed ? "true" : "false";
    }

    /* renderPolicy updates the policy section in place: a choice the user
     * is making in the select survives the refreshes signals cause. */
    function renderPolicy() {
        const auto = status["automatic-updates"] || {};
        const policy = auto.policy || status["automatic-update-policy"] || "none";
        $("policy-value").textContent = policy;
        $("policy-desc").textContent = POLICIES[policy] || "";
        const facts = [];
        if (status["automatic-updates"]) {
            let win = "Maintenance window: " + (auto.window || "any time");
            if (auto.window && auto["window-open"])
                win += " (open now)";
            else if (auto.window && auto["next-window"])
                win += " (opens " + when(auto["next-window"]) + ")";
            facts.push(win);
            if (auto["fleetlock-url"])
                facts.push("Reboots coordinated by FleetLock at " + auto["fleetlock-url"] + (auto["fleetlock-group"] ? " (group " + auto["fleetlock-group"] + ")" : ""));
            if (auto.reboot)
                facts.push("Reboot into " + short(auto.reboot.checksum) + " planned for " + when(auto.reboot.at) + " (" + auto.reboot.reason + ")");
        }
        $("policy-facts").replaceChildren(...facts.map(f => el("li", {}, f)));
        const canSet = canSetPolicy && allowed(POLICY_KIND);
        const select = $("policy-select");
        const apply = $("policy-apply");
        if (select.dataset.dirty !== "true")
            select.value = policy;
        select.disabled = apply.disabled = !canSet;
        select.title = apply.title = canSet ? "" : policyReason();
        const why = $("policy-reason");
        why.hidden = canSet;
        why.textContent = canSet ? "" : policyReason();
    }

    function setPolicy() {
        const select = $("policy-select");
        showError("");
        sysrootCall("SetAutomaticUpdates", [{ policy: cockpit.variant("s", select.value) }], "a{sv}")
                .then(() => {
                    select.dataset.dirty = "false";
                    return refresh();
                })
                .catch(ex => showError("Changing the policy failed: " + errorText(ex)));
    }

    function policyReason() {
        if (!canSetPolicy)
            return "This os-updated cannot change the policy over D-Bus; set it in its configuration.";
        return denyReason();
    }

    function renderHistory(entries) {
        const body = $("history").tBodies[0];
        body.replaceChildren();
        if (entries.length === 0) {
            body.append(el("tr", {}, el("td", { colspan: 6, class: "osu-muted" }, "No transactions yet.")));
            return;
        }
        for (const h of entries) {
            body.append(el("tr", { "data-kind": h.kind, "data-result": h.result },
                           el("td", {}, when(h.start)),
                           el("td", {}, h.kind),
                           el("td", {}, String(h["caller-uid"])),
                           el("td", {}, el("span", { class: "osu-result osu-result-" + h.result }, h.result)),
                           el("td", {}, el("code", {}, short(h.from)), h.to ? " → " : "", el("code", {}, short(h.to))),
                           h.error ? el("td", { class: "osu-error-text" }, h.error) : el("td", { class: "osu-muted" }, h.note || "")));
        }
    }

    function renderActions() {
        const deps = status ? status.deployments || [] : [];
        const running = txn && !txn.finished;
        const mayUpgrade = allowed("upgrade");
        const mayRollback = allowed("rollback");
        const hasRollback = deps.some(d => d.rollback);
        const reason = denyReason();
        const set = (id, enabled, why) => {
            const b = $(id);
            b.disabled = !enabled;
            b.title = enabled ? "" : why;
        };
        set("check", mayUpgrade && !running, running ? "A transaction is running." : reason);
        set("update", mayUpgrade && !running, running ? "A transaction is running." : reason);
        set("rollback", mayRollback && hasRollback && !running,
            running ? "A transaction is running." : !mayRollback ? reason : "There is no rollback deployment.");
        const mayCancel = running && (allowed("cancel") || (auth && txn.initiator === auth["caller-uid"]));
        set("cancel", mayCancel, running ? reason : "No transaction is running.");

        const readOnly = auth && !mayUpgrade && !mayRollback;
        const ro = $("readonly");
        ro.hidden = !readOnly;
        ro.textContent = readOnly ? "Read-only: " + reason : "";
        const why = $("actions-reason");
        why.hidden = !readOnly;
        why.textContent = readOnly ? reason : "";
        document.body.dataset.readonly = readOnly ? "true" : "false";
    }

    /* ---- loading ---- */

    function loadDiffs(deps) {
        const cur = current(deps);
        const diffs = {};
        const jobs = deps.filter(d => cur && d.checksum !== cur.checksum).map(d =>
            sysrootCall("DbDiff", [cur.checksum, d.checksum], "ss")
                    .then(([doc]) => { diffs[d.checksum] = JSON.parse(doc) })
                    .catch(ex => { diffs[d.checksum] = { error: errorText(ex) } }));
        return Promise.all(jobs).then(() => diffs);
    }

    function introspect() {
        return client.call(PATH, "org.freedesktop.DBus.Introspectable", "Introspect", [])
                .then(([xml]) => {
                    const doc = new DOMParser().parseFromString(xml, "text/xml");
                    canSetPolicy = [...doc.querySelectorAll("interface[name='" + SYSROOT + "'] > method")]
                            .some(m => m.getAttribute("name") === "SetAutomaticUpdates");
                })
                .catch(() => { canSetPolicy = false });
    }

    /* refresh reloads everything the page shows; calls during a refresh
     * are folded into one more. */
    function refresh() {
        if (refreshing) {
            refreshAgain = true;
            return refreshing;
        }
        refreshing = Promise.all([
            sysrootCall("GetStatus", []),
            sysrootCall("GetAuthorizations", []),
            sysrootCall("History", [HISTORY_LIMIT], "u"),
        ])
                .then(([[st], [au], [hist]]) => {
                    status = JSON.parse(st);
                    auth = JSON.parse(au);
                    return loadDiffs(status.deployments || []).then(diffs => {
                        renderSummary();
                        renderDeployments(diffs);
                        renderPolicy();
                        renderHistory(JSON.parse(hist));
                        if (status.transaction && (!txn || txn.path !== status.transaction))
                            attach(status.transaction);
                        renderActions();
                        const app = $("app");
                        app.dataset.state = "ready";
                        app.dataset.refreshes = String(Number(app.dataset.refreshes || 0) + 1);
                    });
                })
                .catch(ex => {
                    $("app").dataset.state = "error";
                    showError("Cannot talk to os-updated: " + errorText(ex));
                })
                .finally(() => {
                    refreshing = null;
                    if (refreshAgain) {
                        refreshAgain = false;
                        refresh();
                    }
                });
        return refreshing;
    }

    /* ---- transactions ---- */

    function attach(path, kind) {
        if (txn && txn.path === path)
            return;
        txn = { path, kind: kind || "", initiator: null, finished: false };
        const box = $("transaction");
        box.hidden = false;
        box.dataset.path = path;
        box.dataset.finished = "false";
        for (const k of ["success", "outcome", "stage", "bytes", "rate", "objects"])
            delete box.dataset[k];
        $("txn-kind").textContent = kind || "";
        $("txn-stage").textContent = "queued";
        $("txn-figures").textContent = "";
        $("txn-result").textContent = "";
        $("txn-result").className = "osu-txn-result";
        $("txn-messages").replaceChildren();
        setBar(0);
        const mine = txn;
        client.call(path, "org.freedesktop.DBus.Properties", "GetAll", [TXN])
                .then(([props]) => {
                    if (txn !== mine)
                        return;
                    const v = name => props[name] ? props[name].v : undefined;
                    txn.kind = v("Kind") || txn.kind;
                    txn.initiator = v("Initiator");
                    $("txn-kind").textContent = txn.kind;
                    if (v("Stage"))
                        $("txn-stage").textContent = v("Stage");
                    if (v("Finished") && !txn.finished)
                        finished(path, v("Success"), v("Error"));
                    renderActions();
                })
                .catch(() => {});
        renderActions();
    }

    function setBar(percent) {
        $("txn-bar-fill").style.width = Math.min(100, percent) + "%";
        $("txn-bar").setAttribute("aria-valuenow", String(percent));
    }

    /* progress shows a Progress signal: (stage, bytes_done, bytes_expected,
     * objects_done, objects_total, parts_done, parts_total, rate in bytes
     * per second, eta_seconds); totals are 0 while unknown. */
    function progress(path, [stage, bytesDone, bytesExpected, objectsDone, objectsTotal, partsDone, partsTotal, rate, eta]) {
        attach(path);
        $("txn-stage").textContent = stage;
        let percent = 0;
        if (bytesExpected > 0)
            percent = Math.floor(bytesDone * 100 / bytesExpected);
        else if (partsTotal > 0)
            percent = Math.floor(partsDone * 100 / partsTotal);
        else if (objectsTotal > 0)
            percent = Math.floor(objectsDone * 100 / objectsTotal);
        setBar(percent);
        const figures = [];
        if (percent > 0)
            figures.push(percent + "%");
        if (bytesExpected > 0)
            figures.push(bytes(bytesDone) + " of " + bytes(bytesExpected));
        else if (bytesDone > 0)
            figures.push(bytes(bytesDone));
        if (partsTotal > 0)
            figures.push(partsDone + " of " + partsTotal + " delta parts");
        if (objectsTotal > 0)
            figures.push(objectsDone + " of " + objectsTotal + " objects");
        if (rate > 0)
            figures.push(bytes(rate) + "/s");
        if (eta > 0)
            figures.push(duration(eta) + " left");
        $("txn-figures").textContent = figures.join(" · ");
        const box = $("transaction");
        box.dataset.stage = stage;
        box.dataset.bytes = String(bytesDone);
        box.dataset.rate = String(rate);
        box.dataset.objects = String(objectsDone);
    }

    function message(path, [text]) {
        attach(path);
        const list = $("txn-messages");
        list.append(el("li", {}, text));
        while (list.children.length > 20)
            list.firstChild.remove();
    }

    function finished(path, success, error) {
        attach(path);
        if (txn.finished)
            return;
        txn.finished = true;
        const box = $("transaction");
        box.dataset.finished = "true";
        box.dataset.success = success ? "true" : "false";
        const result = $("txn-result");
        if (success) {
            setBar(100);
            result.className = "osu-txn-result osu-txn-success";
            const texts = { "no-update": "No update available.", deployed: "Deployed; it boots next.", done: "Done." };
            client.call(path, "org.freedesktop.DBus.Properties", "Get", [TXN, "Outcome"])
                    .then(([o]) => {
                        box.dataset.outcome = o.v;
                        return texts[o.v] || "Done.";
                    })
                    .catch(() => "Done.")
                    .then(text => {
                        if (txn && txn.path === path)
                            result.textContent = text;
                    });
        } else if (error === "cancelled") {
            result.className = "osu-txn-result osu-txn-cancelled";
            result.textContent = "Cancelled.";
        } else {
            result.className = "osu-txn-result osu-txn-failed";
            result.textContent = "Failed: " + error;
        }
        refresh();
    }

    function onTxnSignal(path, iface, signal, args) {
        if (signal === "Progress")
            progress(path, args);
        else if (signal === "Message")
            message(path, args);
        else if (signal === "Finished")
            finished(path, args[0], args[1]);
    }

    function start(kind, method, args, type) {
        showError("");
        sysrootCall(method, args, type)
                .then(([path]) => { attach(path, kind); refresh() })
                .catch(ex => showError(kind + " refused: " + errorText(ex)));
    }

    function init() {
        client = cockpit.dbus(BUS, { bus: "system", superuser: "try" });
        client.addEventListener("close", (ev, options) => {
            if (options && options.problem)
                showError("Connection to os-updated closed: " + cockpit.message(options));
        });
        // Added before any method is called: no signal of a transaction
        // started from this page (or elsewhere) is missed.
        client.subscribe({ interface: TXN, path_namespace: TXN_PREFIX }, onTxnSignal);
        client.subscribe({ interface: "org.freedesktop.DBus.Properties", path: PATH, member: "PropertiesChanged" },
                         () => refresh());
        // UpdateFound, UpdateStaged, RebootScheduled: the automatic policy
        // at work.
        client.subscribe({ interface: SYSROOT, path: PATH }, () => refresh());
        $("check").addEventListener("click", () => start("check", "Upgrade", [variants({ check: true })], "a{sv}"));
        $("update").addEventListener("click", () => start("upgrade", "Upgrade", [variants({ reboot: true })], "a{sv}"));
        $("rollback").addEventListener("click", () => start("rollback", "Rollback", [variants({ reboot: true })], "a{sv}"));
        $("policy-select").addEventListener("change", () => { $("policy-select").dataset.dirty = "true" });
        $("policy-apply").addEventListener("click", setPolicy);
        $("cancel").addEventListener("click", () => {
            if (!txn)
                return;
            client.call(txn.path, TXN, "Cancel", [])
                    .catch(ex => showError("Cancel refused: " + errorText(ex)));
        });
        // Turning administrative access on or off changes who calls the
        // daemon: start over with the new identity.
        try {
            const su = cockpit.dbus(null, { bus: "internal" }).proxy("cockpit.Superuser", "/superuser");
            let seen = null;
            su.addEventListener("changed", () => {
                if (seen !== null && seen !== su.Current)
                    window.location.reload();
                seen = su.Current;
            });
        } catch (e) { /* no superuser support in this bridge */ }
        introspect().then(refresh);
    }

    document.addEventListener("DOMContentLoaded", init);
}());
