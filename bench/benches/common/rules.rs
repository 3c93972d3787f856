//! Rules of a big channel, shared by the criterion benches: 50 commands, 20 keywords, two
//! timers, and 10 filters (200 banned phrases: plain, wildcard, regex; two filters in shadow
//! mode). Included with `#[path]` by `bench/benches/engine.rs` and `bench/benches/pipeline.rs`.

/// The whole rules file, as TOML.
pub fn rules_toml() -> String {
    let mut out = String::from("regulars = [\"reggie\", \"tom\"]\n");
    for i in 0..50 {
        out += &format!(
            "[[commands]]\nname = \"!cmd{i}\"\naliases = [\"!c{i}\"]\nresponse = \"$(user) used cmd{i} $(count) times, hi $(touser) $(random 1 6)\"\nglobal_cooldown_s = 5\n"
        );
    }
    for i in 0..20 {
        out += &format!(
            "[[keywords]]\nname = \"kw{i}\"\ngroups = [[\"topic{i}\", \"what\"], [\"kw{i}\"]]\nresponse = \"about topic {i}\"\nglobal_cooldown_s = 30\n"
        );
    }
    out += "[[timers]]\nname = \"t1\"\nmessage = \"follow!\"\ninterval_s = 600\nmin_lines = 50\n";
    out += "[[timers]]\nname = \"t2\"\nmessage = \"prime!\"\ninterval_s = 900\nmin_lines = 50\n";
    out += "[[filters]]\nname = \"banned\"\nkind = \"banned_phrases\"\naction = { timeout = 600 }\nwarning_first = true\nmessage = \"$(user) no\"\nphrases = [\n";
    for i in 0..150 {
        out += &format!("  {{ pattern = \"badword{i}\" }},\n");
    }
    for i in 0..30 {
        out += &format!("  {{ pattern = \"scam*{i}*link\", kind = \"wildcard\" }},\n");
    }
    for i in 0..20 {
        out += &format!("  {{ pattern = \"\\\\bspam{i}[a-z]+\\\\b\", kind = \"regex\" }},\n");
    }
    out += "]\n";
    out += r#"
[[filters]]
name = "links"
kind = "links"
allow_domains = ["twitch.tv", "youtube.com"]
action = { timeout = 10 }
warning_first = true
[[filters]]
name = "caps"
kind = "caps"
min_length = 15
max_share = 0.75
action = "delete"
[[filters]]
name = "symbols"
kind = "symbols"
min_length = 12
max_share = 0.6
[[filters]]
name = "emotes"
kind = "emotes"
max_count = 12
[[filters]]
name = "repetition"
kind = "repetition"
max_word_repeats = 6
max_char_run = 20
action = { timeout = 30 }
[[filters]]
name = "length"
kind = "length"
max_length = 350
[[filters]]
name = "zalgo"
kind = "zalgo"
max_count = 8
[[filters]]
name = "caps-trial"
kind = "caps"
min_length = 8
max_share = 0.6
shadow = true
[[filters]]
name = "repetition-trial"
kind = "repetition"
max_word_repeats = 3
shadow = true
"#;
    out
}
