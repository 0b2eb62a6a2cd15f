"use strict";
// The docs stay connected: every relative link in README.md and docs/*.md reaches a file of
// this repository that exists and, with a #fragment, a heading of that file (the anchor
// GitHub makes for it).
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const REPO = path.join(__dirname, "..", "..");

// Markdown lines outside fenced code blocks, with their line numbers.
function proseLines(text) {
    const out = [];
    let fence = null;
    text.split("\n").forEach((line, i) => {
        const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
        if (m) {
            if (fence === null) fence = m[1];
            else if (m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
            return;
        }
        if (fence === null) out.push({ line, number: i + 1 });
    });
    return out;
}

// The anchor GitHub gives a heading (github-slugger): the rendered text in lower case, without
// punctuation but '-' and '_', spaces made '-'; a repeated anchor gets -1, -2, ...
function anchors(text) {
    const seen = new Map();
    const result = new Set();
    for (const { line } of proseLines(text)) {
        const m = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
        if (!m) continue;
        const rendered = m[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/<[^>]*>/g, "");
        const base = rendered.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
        const n = seen.get(base) || 0;
        seen.set(base, n + 1);
        result.add(n === 0 ? base : base + "-" + n);
    }
    return result;
}

// Every inline link and image target of a markdown file, outside code blocks and code spans.
function links(text) {
    const out = [];
    for (const { line, number } of proseLines(text)) {
        const prose = line.replace(/(`+)[^`]*?\1/g, "");
        for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
            out.push({ target: m[1], number });
        }
    }
    return out;
}

// The broken relative links of the given markdown files, as "file:line: target: why".
function brokenLinks(root, files) {
    const problems = [];
    const anchorCache = new Map();
    const anchorsOf = (file) => {
        if (!anchorCache.has(file)) anchorCache.set(file, anchors(fs.readFileSync(file, "utf8")));
        return anchorCache.get(file);
    };
    for (const file of files) {
        const rel = path.relative(root, file);
        for (const { target, number } of links(fs.readFileSync(file, "utf8"))) {
            const where = `${rel}:${number}: ${target}: `;
            if (target === "") { problems.push(where + "empty target"); continue; }
            if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not a file here
            const hash = target.indexOf("#");
            const filePart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
            const fragment = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
            if (filePart.startsWith("/")) { problems.push(where + "absolute path"); continue; }
            const resolved = filePart === "" ? file : path.resolve(path.dirname(file), filePart);
            if (path.relative(root, resolved).startsWith("..")) { problems.push(where + "outside the repository"); continue; }
            if (!fs.existsSync(resolved)) { problems.push(where + "no such file"); continue; }
            if (fragment === null) continue;
            if (!resolved.endsWith(".md") || !fs.statSync(resolved).isFile()) {
                problems.push(where + "a #fragment on a file that is not markdown");
            } else if (!anchorsOf(resolved).has(fragment)) {
                problems.push(where + `no heading with the anchor #${fragment} in ${path.relative(root, resolved)}`);
            }
        }
    }
    return problems;
}

function docFiles() {
    const docs = path.join(REPO, "docs");
    return [path.join(REPO, "README.md")].concat(
        fs.readdirSync(docs).filter((f) => f.endsWith(".md")).sort().map((f) => path.join(docs, f)));
}

test("the checker finds planted broken links and only those", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "links-test-"));
    try {
        fs.mkdirSync(path.join(root, "docs"));
        fs.writeFileSync(path.join(root, "docs", "a.md"), [
            "# Title: `one` two", "## Twice", "## Twice", "### 6.1 Step: `!mex.di` (seed) / `vertarget`", "",
        ].join("\n"));
        fs.writeFileSync(path.join(root, "README.md"), [
            "[ok](docs/a.md) [ok](docs/a.md#title-one-two) [ok](docs/a.md#twice-1) [ok](#here)",
            "[ok](docs/a.md#61-step-mexdi-seed--vertarget) [ok](https://example.com/x#y) ![ok](docs/)",
            "## Here",
            "[bad](docs/missing.md) [bad](docs/a.md#twice-2) [bad](#nowhere) [bad](../outside.md)",
            "`[not a link](nowhere.md)` and ``[nor](this.md)``",
            "```", "[in a code block](nowhere.md)", "```",
        ].join("\n"));
        const problems = brokenLinks(root, [path.join(root, "README.md"), path.join(root, "docs", "a.md")]);
        assert.deepEqual(problems, [
            "README.md:4: docs/missing.md: no such file",
            "README.md:4: docs/a.md#twice-2: no heading with the anchor #twice-2 in docs/a.md",
            "README.md:4: #nowhere: no heading with the anchor #nowhere in README.md",
            "README.md:4: ../outside.md: outside the repository",
        ]);
    } finally {
        fs.rmSync(root, { recursive: true, force: true });
    }
});

test("every relative link in README.md and docs/*.md reaches a file and heading that exist", () => {
    const files = docFiles();
    assert.ok(files.length > 1, "docs/*.md exist");
    assert.deepEqual(brokenLinks(REPO, files), []);
});
