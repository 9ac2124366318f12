//! The README against what it quotes: the walk-through script's lines and the Makefile's targets.

const README: &str = include_str!("../../README.md");
const WALKTHROUGH: &str = include_str!("../../examples/walkthrough.sh");
const MAKEFILE: &str = include_str!("../../Makefile");

/// The fenced blocks of the README whose info string is `info`, each with its lines ending in a line feed.
fn blocks(info: &str) -> Vec<String> {
    let opening = format!("```{info}");
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in README.lines() {
        match block.as_mut() {
            None if line == opening => block = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.extend(block.take()),
            Some(lines) => {
                lines.push_str(line);
                lines.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn the_readmes_walkthrough_is_the_scripts_lines_and_shows_every_request() {
    let quoted = blocks("sh examples/walkthrough.sh");
    assert_eq!(
        quoted.len(),
        3,
        "the walk-through, order batches and idempotency keys"
    );
    for block in &quoted {
        let at_line_start = WALKTHROUGH
            .match_indices(block.as_str())
            .any(|(at, _)| at == 0 || WALKTHROUGH.as_bytes()[at - 1] == b'\n');
        assert!(
            at_line_start,
            "this README block is not a run of lines of examples/walkthrough.sh:\n{block}"
        );
    }
    let requests = WALKTHROUGH
        .lines()
        .filter(|line| line.contains("curl -si ") && !line.trim_start().starts_with('#'));
    for request in requests {
        assert!(
            quoted.iter().any(|block| block.contains(request)),
            "the README does not show this request of examples/walkthrough.sh:\n{request}"
        );
    }
}

#[test]
fn the_readme_lists_the_targets_make_help_lists() {
    let mut listed: Vec<&str> = MAKEFILE
        .lines()
        .filter(|line| line.contains(" ## "))
        .filter_map(|line| line.split_once(':').map(|(target, _)| target))
        .filter(|target| *target != "help")
        .collect();
    let sentence = README
        .split_once("`make help` lists\nevery target: ")
        .or_else(|| README.split_once("`make help` lists every target: "))
        .map(|(_, rest)| rest.split_once('.').map_or(rest, |(sentence, _)| sentence))
        .expect("the README's sentence on `make help`");
    let mut named: Vec<&str> = sentence.split('`').skip(1).step_by(2).collect();
    listed.sort_unstable();
    named.sort_unstable();
    assert_eq!(
        named, listed,
        "the README's list of targets and `make help`"
    );
}
