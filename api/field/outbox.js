/* The device's outbox: events recorded in the field wait here (IndexedDB) until ingest
 * has answered for each of them, across reloads, restarts and days without a network.
 *
 * A record is {event_id, seq, event, status, reason, saved_at, answered_at}; status is
 * "pending" until the server answers "accepted", "duplicate" or "rejected" (with its
 * reason). The event keeps the event_id stamped when it was saved, so sending it twice
 * (a lost answer, two tabs) is a duplicate on the server, never a second event.
 * A second store, "meta", keeps the last work list for reading offline.
 */
"use strict";

(function () {
  const DB_NAME = "jiahe-field";
  const DB_VERSION = 1;
  let opening = null;

  function open() {
    if (!opening) {
      opening = new Promise((resolve, reject) => {
        const request = indexedDB.open(DB_NAME, DB_VERSION);
        request.onupgradeneeded = () => {
          const db = request.result;
          if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "event_id" });
          if (!db.objectStoreNames.contains("meta")) db.createObjectStore("meta", { keyPath: "key" });
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    }
    return opening;
  }

  async function run(storeName, mode, work) {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const result = work(tx.objectStore(storeName));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  let counter = 0;

  window.FieldOutbox = {
    /** Keep a new event (status pending). */
    add(event) {
      const record = {
        event_id: event.event_id, seq: Date.now() * 1000 + (counter++ % 1000), event,
        status: "pending", reason: "", saved_at: new Date().toISOString(), answered_at: null,
      };
      return run("outbox", "readwrite", (store) => store.add(record)).then(() => record);
    },
    put(record) {
      return run("outbox", "readwrite", (store) => store.put(record));
    },
    /** Every record, oldest first. */
    async all() {
      const rows = await run("outbox", "readonly", (store) => store.getAll());
      return (rows || []).sort((a, b) => a.seq - b.seq);
    },
    /** Drop the records the server has answered for as accepted or duplicate. */
    async clearDone() {
      const done = (await this.all()).filter((r) => r.status === "accepted" || r.status === "duplicate");
      await run("outbox", "readwrite", (store) => { for (const r of done) store.delete(r.event_id); });
      return done.length;
    },
    async getMeta(key) {
      const row = await run("meta", "readonly", (store) => store.get(key));
      return row ? row.value : null;
    },
    setMeta(key, value) {
      return run("meta", "readwrite", (store) => store.put({ key, value }));
    },
    deleteMeta(key) {
      return run("meta", "readwrite", (store) => store.delete(key));
    },
  };
})();
