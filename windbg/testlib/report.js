"use strict";
// What windbg/WrFastMutex.js prints for a dump of the fake data model.
const { withHost } = require("./fake-host.js");
const m = require("../WrFastMutex.js");

// The lines !WrFastMutexJs logs for dump under options (makeHost's), split at every "\n":
// a report that ends with a newline ends with an empty string.
function reportLines(dump, options) {
    return withHost(dump, options, (fake) => {
        m.WrFastMutexJs();
        return fake.log.join("").split("\n");
    });
}

module.exports = { reportLines };
