//! The results of a bench run: rows (a subject, its floor, the ratio, a goal), sizes, the
//! machine, and their rendering as an aligned table or JSON.

use super::stats::Stats;
use serde::Serialize;

/// A measured series.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// What ran (a command line or a description).
    pub label: String,
    /// Its statistics (milliseconds).
    #[serde(flatten)]
    pub stats: Stats,
}

/// A target from the issue, evaluated on this run.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// The target as written in the issue, e.g. `<= 1.10x raw uv`.
    pub target: String,
    /// Whether this run met it.
    pub met: bool,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Stable id (for JSON consumers), e.g. `install.uv`.
    pub id: String,
    /// The subject.
    pub subject: Series,
    /// The floor it is compared with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Series>,
    /// subject p50 / floor p50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// subject p50 - floor p50 (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_ms: Option<f64>,
    /// subject min / floor min: the ratio least disturbed by other load on the machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_min: Option<f64>,
    /// The goal, when the issue sets one for this figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

impl Row {
    /// A row without a floor.
    pub fn alone(id: &str, subject: Series) -> Row {
        Row {
            id: id.into(),
            subject,
            floor: None,
            ratio: None,
            delta_ms: None,
            ratio_min: None,
            goal: None,
        }
    }

    /// A row compared with `floor`.
    pub fn against(id: &str, subject: Series, floor: Series) -> Row {
        let ratio = (floor.stats.p50 > 0.0).then(|| subject.stats.p50 / floor.stats.p50);
        let delta = subject.stats.p50 - floor.stats.p50;
        let ratio_min = (floor.stats.min > 0.0).then(|| subject.stats.min / floor.stats.min);
        Row {
            id: id.into(),
            subject,
            floor: Some(floor),
            ratio,
            delta_ms: Some(delta),
            ratio_min,
            goal: None,
        }
    }

    /// Sets the goal: `met` decides it.
    pub fn goal(mut self, target: &str, met: bool) -> Row {
        self.goal = Some(Goal {
            target: target.into(),
            met,
        });
        self
    }
}

/// A size figure.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    /// Stable id, e.g. `wheel`.
    pub id: String,
    /// What it is.
    pub label: String,
    /// Bytes.
    pub bytes: u64,
    /// Files counted, when it is a directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// `available_parallelism`.
    pub nproc: usize,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// /proc/loadavg (1, 5, 15 min) when the bench started.
    pub load_start: String,
    /// /proc/loadavg when it ended.
    pub load_end: String,
    /// Tool versions (`python`, `uv`, `node`, ...).
    pub tools: std::collections::BTreeMap<String, String>,
}

/// Everything one bench run produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always 1.
    pub schema_version: u32,
    /// The command that produced it.
    pub command: String,
    /// UTC time it started (RFC 3339).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// The timing rows, in order.
    pub rows: Vec<Row>,
    /// Sizes.
    pub sizes: Vec<Size>,
    /// What the figures mean where it is not obvious, and what was skipped.
    pub notes: Vec<String>,
}

/// Milliseconds, with more precision for small values.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Bytes in a human unit.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

impl Report {
    /// The aligned text table (times in ms; ratio = subject p50 / floor p50).
    pub fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "ktx bench: {} cpu ({}), {} MiB RAM, load {} -> {}\n",
            m.nproc, m.cpu, m.memory_mib, m.load_start, m.load_end
        );
        let tools: Vec<String> = m.tools.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("tools: {}\n", tools.join(", ")));
        out.push_str(&format!("command: {}\n\n", self.command));
        let header = [
            "id",
            "subject",
            "runs",
            "min",
            "p50",
            "p95",
            "max",
            "floor",
            "floor p50",
            "ratio",
            "+ms",
            "ratio(min)",
            "goal",
        ];
        let right = [
            false, false, true, true, true, true, true, false, true, true, true, true, false,
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let s = &r.subject.stats;
                vec![
                    r.id.clone(),
                    r.subject.label.clone(),
                    s.runs.to_string(),
                    ms(s.min),
                    ms(s.p50),
                    ms(s.p95),
                    ms(s.max),
                    r.floor
                        .as_ref()
                        .map(|f| f.label.clone())
                        .unwrap_or_default(),
                    r.floor
                        .as_ref()
                        .map(|f| ms(f.stats.p50))
                        .unwrap_or_default(),
                    r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
                    r.delta_ms.map(|d| format!("{d:+.1}")).unwrap_or_default(),
                    r.ratio_min.map(|x| format!("{x:.2}x")).unwrap_or_default(),
                    r.goal
                        .as_ref()
                        .map(|g| format!("{} {}", if g.met { "met" } else { "MISSED" }, g.target))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(&header, &rows, &right));
        out.push_str(
            "\ntimes in ms; ratio = subject p50 / floor p50; +ms = subject p50 - floor p50; ratio(min) = subject min / floor min\n\n",
        );
        let sizes: Vec<Vec<String>> = self
            .sizes
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.label.clone(),
                    human_bytes(s.bytes),
                    s.bytes.to_string(),
                    s.files.map(|f| f.to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["id", "size of", "size", "bytes", "files"],
            &sizes,
            &[false, false, true, true, true],
        ));
        if !self.notes.is_empty() {
            out.push_str("\nnotes:\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_units() {
        let s = |p50| Series {
            label: "x".into(),
            stats: Stats::of(&[p50]).unwrap(),
        };
        let r = Row::against("a", s(110.0), s(100.0)).goal("<= 1.10x", true);
        assert!((r.ratio.unwrap() - 1.1).abs() < 1e-9);
        assert!((r.delta_ms.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(
            (ms(1234.4), ms(12.34), ms(1.234)),
            ("1234".into(), "12.3".into(), "1.23".into())
        );
        assert_eq!(human_bytes(50_701), "49.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
