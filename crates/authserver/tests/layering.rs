//! The module layering of every crate in the workspace, checked from the source text.
//!
//! For each crate under `crates/` it reads `src/**/*.rs` (the library: `main.rs` and `src/bin`
//! are other crates), blanks out comments, string literals and `#[cfg(test)]` items, and
//! collects every `crate::`, `super::` and `self::` path. A path is resolved to the module it
//! names, following `pub use` re-exports (`crate::Snapshot` is `store`'s). An edge joins the
//! two *sibling* modules under the deepest module both ends share: `http::reply` using
//! `telemetry` is `http -> telemetry`; `cli::users` using `cli::secret` is
//! `cli::users -> cli::secret`; a module using its own parent or child is no edge.
//!
//! It fails on any cycle among sibling modules, at every depth and in every crate (so a cycle
//! between two files of `cli/` counts as much as one between `store` and `document`), and, in
//! `crates/authserver`, on any top-level edge to a module of higher rank (see [`RANKS`]).
//! Each failure names the edge and the first place it occurs.
//!
//! Why text and not `rustc`: a test of plain Rust that needs no nightly, no extra crate and no
//! build. It does not see paths assembled inside `macro_rules!` bodies (`$crate::`), nor `use`
//! of a child module by its bare name (a module using its own child is no edge anyway).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The ranks of `crates/authserver`'s top-level modules: a module may use modules of lower
/// rank, or of its own rank as long as that makes no cycle. (`lib.rs`'s `# Layout` lists the same.)
const RANKS: &[(&str, u8)] = &[
    // 0: leaves, each with one job and needing nothing else of this crate.
    // Settings are read first and by everyone; they know nothing of who reads them.
    ("config", 0),
    // Reading reloaded files: the leaf below `store` and `tls`, which reload.
    ("files", 0),
    // The users-file store (uses `files` only).
    ("store", 0),
    // rustls and certificate reload (uses `files` only).
    ("tls", 0),
    // The Argon2id limiter: a semaphore and a memory budget.
    ("limiter", 0),
    // Per-connection deadlines and the per-address cap: sockets and timers only.
    ("conn", 0),
    // Denial padding: durations only.
    ("pacing", 0),
    // Single flight of identical verifications: a table of channels, core keys only.
    ("flight", 0),
    // The access rules in service and their reload (uses `files` only).
    ("access", 0),
    // 1: what every later layer reports to; they report nothing of a surface.
    // Logs and metrics: every surface records into them.
    ("telemetry", 1),
    // The audit sinks: emitted by the HTTP layer, wiring and the CLI, never the reverse.
    ("audit", 1),
    // 2: the decision, with no HTTP in it.
    // The regulator around each attempt: its store backends and telemetry counters.
    ("regulation", 2),
    // One attempt from header values to a decision: store, limiter, pacing, regulation.
    ("decide", 2),
    // The OAuth issuer: keys, jti stores, client authentication through `decide`'s gate.
    ("oauth", 2),
    // 3: the axum router shared by the server and Lambda; turns decisions into answers.
    ("http", 3),
    // 4: the surfaces that assemble and run the router.
    // Builds the state `http` serves, from settings: it needs every part below.
    ("wiring", 4),
    // The standalone accept loop around `http`'s router.
    ("server", 4),
    // The Lambda runtime around the same router, and the rotation and compliance modes.
    ("lambda", 4),
    // The compliance check's target from settings, run by the CLI and the Lambda mode.
    ("compliance", 4),
    // 5: the entry point: starts the server or Lambda, runs the admin commands.
    ("cli", 5),
];

/// A module, as its path from the crate root (`["http", "reply"]`).
type ModPath = Vec<String>;

/// Where a reference was written.
#[derive(Debug, Clone)]
struct Site {
    file: PathBuf,
    line: usize,
}

/// One crate's source, ready to be resolved.
#[derive(Default)]
struct Crate {
    /// Every module that has a file.
    modules: BTreeSet<ModPath>,
    /// `(module, name)` → the module that `pub use` re-exports `name` from.
    reexports: BTreeMap<(ModPath, String), ModPath>,
    /// Every path written outside comments, strings and tests: the module it was written in,
    /// the absolute path it names, and where.
    refs: Vec<(ModPath, ModPath, Site)>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn modules_are_layered() {
    let mut problems = Vec::new();
    for dir in crate_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let edges = edges(&read_crate(&dir));
        problems.extend(cycles(&edges).into_iter().map(|c| format!("{name}: {c}")));
        if name == "authserver" {
            problems.extend(
                rank_violations(&edges)
                    .into_iter()
                    .map(|v| format!("{name}: {v}")),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "module layering broken:\n  {}",
        problems.join("\n  ")
    );
}

/// The checker itself: a planted upward edge and a planted cycle are both reported, by name.
#[test]
fn the_checker_sees_planted_edges() {
    let mut krate = Crate::default();
    for m in ["config", "http", "decide", "regulation"] {
        krate.modules.insert(vec![m.to_owned()]);
    }
    scan(
        &mut krate,
        &["config".to_owned()],
        "x.rs".as_ref(),
        "use crate::http;\n",
    );
    let decide = ["decide".to_owned()];
    scan(
        &mut krate,
        &decide,
        "x.rs".as_ref(),
        "fn f() { crate::regulation::g() }",
    );
    let regulation = ["regulation".to_owned()];
    scan(
        &mut krate,
        &regulation,
        "x.rs".as_ref(),
        "use crate::{decide::{self, T}};",
    );
    let edges = edges(&krate);
    let ranks = rank_violations(&edges);
    assert_eq!(ranks.len(), 1, "{ranks:?}");
    assert!(ranks[0].starts_with("config -> http (rank 0 -> 3)"), "{ranks:?}");
    let cycles = cycles(&edges);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].contains("decide -> regulation") && cycles[0].contains("regulation -> decide"),
        "{cycles:?}"
    );
}

/// Comments, strings and test modules are not code; `super::` counts from the file's module.
#[test]
fn what_is_not_code_is_not_counted() {
    let text = "// crate::http\n/* crate::http /* nested */ crate::http */ \"crate::http\"\n\
                #[cfg(test)]\nmod tests { use crate::http; }\nlet c = '\"'; fn f<'a>() {}\n\
                use super::{tls, store::{self, Snapshot}};\npub(crate) fn g() {}\n";
    let mut krate = Crate::default();
    scan(&mut krate, &["config".to_owned()], "x.rs".as_ref(), text);
    let named: Vec<String> = krate.refs.iter().map(|(_, to, _)| to.join("::")).collect();
    assert_eq!(named, ["tls", "store", "store::Snapshot"]);
    assert_eq!(krate.refs[0].2.line, 6);
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/lib.rs").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 3, "expected the workspace's crates, found {dirs:?}");
    dirs
}

/// Reads `dir/src` from `lib.rs` down, following `mod` declarations (so a file that is not
/// compiled, or only under `#[cfg(test)]`, is not read).
fn read_crate(dir: &Path) -> Crate {
    let mut krate = Crate::default();
    let mut queue = vec![(Vec::new(), dir.join("src/lib.rs"))];
    while let Some((module, file)) = queue.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let shown = file.strip_prefix(dir).unwrap_or(&file).to_owned();
        let children = scan(&mut krate, &module, &shown, &text);
        krate.modules.insert(module.clone());
        for child in children {
            let path = [module.clone(), vec![child.clone()]].concat();
            queue.push((path, child_file(&file, &module, &child)));
        }
    }
    krate
}

/// Where `mod child;` declared in `file` (of module `module`) lives.
fn child_file(file: &Path, module: &ModPath, child: &str) -> PathBuf {
    let owns_dir = module.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs");
    let base = if owns_dir {
        file.parent().unwrap().to_owned()
    } else {
        file.with_extension("")
    };
    let flat = base.join(format!("{child}.rs"));
    if flat.is_file() {
        flat
    } else {
        base.join(child).join("mod.rs")
    }
}

/// Blanks out what is not code, then records the file's paths and re-exports. Returns the
/// child modules it declares with `mod name;` (outside tests).
fn scan(krate: &mut Crate, module: &[String], file: &Path, text: &str) -> Vec<String> {
    let code = strip_tests(&strip_comments_and_strings(text));
    let mut scanner = Scanner {
        chars: code.chars().collect(),
        pos: 0,
        line: 1,
    };
    let mut children = Vec::new();
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    while let Some(c) = scanner.peek() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
            }
            c if is_ident(c) && !scanner.after_ident_or_dollar() => {
                let here: ModPath =
                    [module.to_vec(), inline.iter().map(|(_, m)| m.clone()).collect()].concat();
                scanner.word(krate, &here, file, &mut children, &mut inline, depth);
                continue;
            }
            _ => {}
        }
        scanner.bump();
    }
    children
}

struct Scanner {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn after_ident_or_dollar(&self) -> bool {
        self.pos > 0 && {
            let p = self.chars[self.pos - 1];
            is_ident(p) || p == '$'
        }
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|c| is_ident(*c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let end = self.pos + token.chars().count();
        if end <= self.chars.len() && self.chars[self.pos..end].iter().copied().eq(token.chars()) {
            (0..token.len()).for_each(|_| self.bump());
            true
        } else {
            false
        }
    }

    /// One word of code: a path root (`crate`, `super`, `self`), a `pub use`, a `mod`, or
    /// anything else (skipped).
    fn word(
        &mut self,
        krate: &mut Crate,
        here: &ModPath,
        file: &Path,
        children: &mut Vec<String>,
        inline: &mut Vec<(usize, String)>,
        depth: usize,
    ) {
        let line = self.line;
        let word = self.ident();
        match word.as_str() {
            "crate" | "super" | "self" if self.eat("::") => {
                let Some(base) = root_of(&word, here, self) else {
                    return;
                };
                for tail in self.tree() {
                    let to = [base.clone(), tail].concat();
                    let site = Site {
                        file: file.to_owned(),
                        line,
                    };
                    krate.refs.push((here.clone(), to, site));
                }
            }
            "pub" => self.reexport(krate, here, file),
            "mod" => {
                self.skip_ws();
                let name = self.ident();
                if self.eat(";") && inline.is_empty() {
                    children.push(name);
                } else if self.eat("{") {
                    // The main loop counts this brace; the block ends when the depth is back.
                    inline.push((depth, name));
                    self.pos -= 1;
                }
            }
            _ => {}
        }
    }

    /// `pub use child::{A, b::C};` in a module re-exports those names from its children.
    fn reexport(&mut self, krate: &mut Crate, here: &ModPath, file: &Path) {
        let save = (self.pos, self.line);
        if self.eat("(") {
            while self.peek().is_some_and(|c| c != ')') {
                self.bump();
            }
            self.bump();
        }
        if !self.eat("use") {
            (self.pos, self.line) = save;
            return;
        }
        self.skip_ws();
        let line = self.line;
        let first = self.ident();
        let base = match first.as_str() {
            "crate" | "super" | "self" if self.eat("::") => root_of(&first, here, self),
            "" => None,
            _ if self.eat("::") => Some([here.clone(), vec![first]].concat()),
            _ => None,
        };
        let Some(base) = base else {
            return;
        };
        for tail in self.tree() {
            let full = [base.clone(), tail].concat();
            if let Some((name, from)) = full.split_last() {
                krate
                    .reexports
                    .insert((here.clone(), name.clone()), from.to_vec());
            }
            // A re-export is a use too.
            let site = Site {
                file: file.to_owned(),
                line,
            };
            krate.refs.push((here.clone(), full, site));
        }
    }

    /// The rest of a path after `root::`: `a::b`, or a `{...}` group of such, as segment lists.
    fn tree(&mut self) -> Vec<ModPath> {
        self.skip_ws();
        if self.eat("{") {
            let mut all = Vec::new();
            while !self.eat("}") && self.peek().is_some() {
                all.extend(self.tree());
                self.eat(",");
            }
            return all;
        }
        if self.eat("*") {
            return vec![Vec::new()];
        }
        let seg = self.ident();
        if seg.is_empty() {
            return vec![Vec::new()];
        }
        let seg = if seg == "self" { Vec::new() } else { vec![seg] };
        if !self.eat("::") {
            return vec![seg];
        }
        self.tree()
            .into_iter()
            .map(|t| [seg.clone(), t].concat())
            .collect()
    }
}

/// The module a path root names, with any further `super::`s eaten; `None` above the root.
fn root_of(word: &str, here: &ModPath, scanner: &mut Scanner) -> Option<ModPath> {
    let mut base = match word {
        "crate" => Vec::new(),
        "self" => here.clone(),
        _ => here.get(..here.len().checked_sub(1)?)?.to_vec(),
    };
    loop {
        let save = (scanner.pos, scanner.line);
        scanner.skip_ws();
        if scanner.ident() == "super" && scanner.eat("::") {
            base.pop()?;
        } else {
            (scanner.pos, scanner.line) = save;
            return Some(base);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The text with comments, string and char literals replaced by spaces (newlines kept, so
/// line numbers stay right).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_end(&chars, i);
        if end > i {
            out.extend(chars[i..end].iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends (`i` when none starts there).
fn literal_end(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied();
    let prev_ident = i > 0 && is_ident(chars[i - 1]);
    match (at(i), at(i + 1)) {
        (Some('/'), Some('/')) => (i..chars.len())
            .find(|&k| chars[k] == '\n')
            .unwrap_or(chars.len()),
        (Some('/'), Some('*')) => block_comment_end(chars, i),
        (Some('"'), _) => quoted_end(chars, i + 1),
        (Some('b'), Some('"')) if !prev_ident => quoted_end(chars, i + 2),
        (Some('r' | 'b'), Some('#' | '"' | 'r')) if !prev_ident => raw_end(chars, i),
        (Some('\''), Some('\\')) => (i + 3..chars.len())
            .find(|&k| chars[k] == '\'')
            .map_or(i, |k| k + 1),
        (Some('\''), Some(_)) if at(i + 2) == Some('\'') => i + 3,
        _ => i,
    }
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut k = start;
    while k + 1 < chars.len() {
        match (chars[k], chars[k + 1]) {
            ('/', '*') => (depth, k) = (depth + 1, k + 2),
            ('*', '/') => {
                (depth, k) = (depth - 1, k + 2);
                if depth == 0 {
                    return k;
                }
            }
            _ => k += 1,
        }
    }
    chars.len()
}

fn quoted_end(chars: &[char], mut k: usize) -> usize {
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    chars.len()
}

/// `r"..."`, `r#"..."#`, `br#"..."#`; `i` itself when it is an identifier such as `r#type`.
fn raw_end(chars: &[char], i: usize) -> usize {
    let mut k = i + usize::from(chars[i] == 'b');
    if chars.get(k) != Some(&'r') {
        return if chars[i] == 'b' && chars.get(i + 1) == Some(&'"') {
            quoted_end(chars, i + 2)
        } else {
            i
        };
    }
    k += 1;
    let hashes = chars[k..].iter().take_while(|&&c| c == '#').count();
    k += hashes;
    if chars.get(k) != Some(&'"') {
        return i;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (k + 1..chars.len())
        .find(|&e| chars[e..].starts_with(&close))
        .map_or(chars.len(), |e| e + close.len())
}

/// The code with every `#[cfg(test)]` item (a `mod tests { }`, a `use`, a `fn`) blanked.
fn strip_tests(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let attr: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + attr.len() <= chars.len() {
        if chars[i..i + attr.len()] != attr[..] {
            i += 1;
            continue;
        }
        let end = item_end(&chars, i + attr.len());
        for c in &mut chars[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    chars.into_iter().collect()
}

/// The end of the item starting at `k`: its first `;` outside braces, or its closing brace.
fn item_end(chars: &[char], mut k: usize) -> usize {
    let mut depth = 0usize;
    while k < chars.len() {
        match chars[k] {
            ';' if depth == 0 => return k + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
        k += 1;
    }
    chars.len()
}

/// The module a path names: its longest prefix that is a module, then through re-exports.
fn resolve(krate: &Crate, path: &ModPath) -> ModPath {
    let mut path = path.clone();
    for _ in 0..8 {
        let len = (0..=path.len())
            .rev()
            .find(|&n| krate.modules.contains(&path[..n]))
            .unwrap_or(0);
        let module = path[..len].to_vec();
        let Some(item) = path.get(len) else {
            return module;
        };
        match krate.reexports.get(&(module.clone(), item.clone())) {
            Some(from) if from != &module => path = [from.clone(), path[len..].to_vec()].concat(),
            _ => return module,
        }
    }
    path
}

/// Edges between sibling modules, each with the first place it is written.
fn edges(krate: &Crate) -> BTreeMap<(String, String), Site> {
    let mut edges = BTreeMap::new();
    for (from, to, site) in &krate.refs {
        let to = resolve(krate, to);
        let from = resolve(krate, from);
        let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if shared < from.len() && shared < to.len() {
            let key = (from[..=shared].join("::"), to[..=shared].join("::"));
            edges.entry(key).or_insert_with(|| site.clone());
        }
    }
    edges
}

/// Every strongly connected set of modules, as its edges.
fn cycles(edges: &BTreeMap<(String, String), Site>) -> Vec<String> {
    let nodes: BTreeSet<&String> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for ((a, b), _) in edges.range((n.clone(), String::new())..) {
                if a != &n {
                    break;
                }
                if seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut groups: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    for n in &nodes {
        let group: BTreeSet<String> = reachable[n]
            .iter()
            .filter(|m| reachable[m].contains(*n))
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.iter().map(|g| describe_cycle(g, edges)).collect()
}

fn describe_cycle(group: &BTreeSet<String>, edges: &BTreeMap<(String, String), Site>) -> String {
    let inside: Vec<(&String, &String, &Site)> = edges
        .iter()
        .filter(|((a, b), _)| group.contains(a) && group.contains(b))
        .map(|((a, b), site)| (a, b, site))
        .collect();
    let mut out = format!(
        "cycle {}; its edges:",
        shortest_cycle(group, &inside).join(" -> ")
    );
    for (a, b, site) in inside {
        let _ = write!(out, " [{a} -> {b} at {}:{}]", site.file.display(), site.line);
    }
    out
}

/// The shortest way round from the group's first module back to it (breadth first).
fn shortest_cycle(group: &BTreeSet<String>, inside: &[(&String, &String, &Site)]) -> Vec<String> {
    let Some(start) = group.first() else {
        return Vec::new();
    };
    let mut paths = vec![vec![start.clone()]];
    let mut seen = BTreeSet::new();
    while !paths.is_empty() {
        let mut next = Vec::new();
        for path in paths {
            let last = path.last().unwrap();
            for (_, b, _) in inside.iter().filter(|(a, _, _)| *a == last) {
                let longer = [path.clone(), vec![(*b).clone()]].concat();
                if *b == start {
                    return longer;
                }
                if seen.insert((*b).clone()) {
                    next.push(longer);
                }
            }
        }
        paths = next;
    }
    Vec::new()
}

/// `crates/authserver`'s top-level edges that point to a higher rank (or to a module the table
/// does not know).
fn rank_violations(edges: &BTreeMap<(String, String), Site>) -> Vec<String> {
    let rank = |m: &str| RANKS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r);
    let mut out = Vec::new();
    for ((a, b), site) in edges {
        if a.contains("::") {
            continue;
        }
        let at = format!("{}:{}", site.file.display(), site.line);
        match (rank(a), rank(b)) {
            (Some(ra), Some(rb)) if ra < rb => out.push(format!("{a} -> {b} (rank {ra} -> {rb}) at {at}")),
            (Some(_), Some(_)) => {}
            _ => out.push(format!(
                "{a} -> {b}: a module missing from RANKS in tests/layering.rs, at {at}"
            )),
        }
    }
    out
}
