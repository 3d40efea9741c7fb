//! The host runner's meters: a simulated one exporting a constant power, or a recorded trace of
//! a real meter's registers replayed. Both count from the state's first reading, dated by the
//! meter's clock and kept in the state, so a restarted runner goes on from the totals a real
//! meter would show.
//!
//! A trace is a CSV file, one line per sample: `offset_secs,exported_wh,imported_wh`, the
//! seconds since the recording began and the meter's two cumulative registers then, as an
//! installer's logger reads them off an Eastron or PZEM meter. Lines starting with `#` and an
//! optional header line are skipped. Offsets rise strictly; registers never fall. A reading
//! takes the last sample at or before its time; past the trace's end the registers stay at the
//! last sample's (the meter stopped moving).

use std::path::{Path, PathBuf};

/// The two registers a reading carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    pub exported_wh: u64,
    pub imported_wh: u64,
}

/// When the meter was installed: its first reading's time, kept in the state.
struct Installed {
    path: PathBuf,
    at: Option<u32>,
}

impl Installed {
    fn new(state: &Path) -> Self {
        Self { path: state.join("installed"), at: None }
    }

    /// Seconds since installation; the first call installs the meter at `now`.
    fn elapsed(&mut self, now: u32) -> Result<u32, String> {
        let at = match self.at {
            Some(at) => at,
            None => {
                let at = match std::fs::read_to_string(&self.path) {
                    Ok(text) => {
                        text.trim().parse().map_err(|e| format!("{}: {e}", self.path.display()))?
                    }
                    Err(_) => {
                        std::fs::write(&self.path, now.to_string()).map_err(|e| e.to_string())?;
                        now
                    }
                };
                *self.at.insert(at)
            }
        };
        Ok(now.saturating_sub(at))
    }
}

/// A recorded meter's samples, checked when loaded.
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    samples: Vec<(u32, Registers)>,
}

impl Trace {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut samples: Vec<(u32, Registers)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || (number == 1 && line.starts_with("offset"))
            {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [offset, exported, imported] = fields[..] else {
                return Err(format!("line {number}: expected offset_secs,exported_wh,imported_wh"));
            };
            let field = |name: &str, value: &str| {
                value.parse::<u64>().map_err(|e| format!("line {number}: {name} {value:?}: {e}"))
            };
            let offset = u32::try_from(field("offset_secs", offset)?)
                .map_err(|_| format!("line {number}: offset_secs beyond 2^32 - 1"))?;
            let registers = Registers {
                exported_wh: field("exported_wh", exported)?,
                imported_wh: field("imported_wh", imported)?,
            };
            if let Some(&(last_offset, last)) = samples.last() {
                if offset <= last_offset {
                    return Err(format!("line {number}: offset_secs {offset} does not rise"));
                }
                if registers.exported_wh < last.exported_wh
                    || registers.imported_wh < last.imported_wh
                {
                    return Err(format!("line {number}: a register went backwards"));
                }
            }
            samples.push((offset, registers));
        }
        if samples.is_empty() {
            return Err("the trace has no samples".into());
        }
        Ok(Self { samples })
    }

    /// The registers at `offset` seconds: the last sample at or before it; before the first
    /// sample, the first sample's registers (the meter's totals when the recording began).
    fn at(&self, offset: u32) -> Registers {
        let after = self.samples.partition_point(|&(at, _)| at <= offset);
        self.samples[after.saturating_sub(1)].1
    }
}

enum Source {
    Simulated { export_w: u64 },
    Recorded(Trace),
}

pub struct HostMeter {
    installed: Installed,
    source: Source,
}

impl HostMeter {
    pub fn simulated(state: &Path, export_w: u64) -> Self {
        Self { installed: Installed::new(state), source: Source::Simulated { export_w } }
    }

    pub fn trace(state: &Path, trace: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
        let trace = Trace::parse(&text).map_err(|e| format!("{}: {e}", trace.display()))?;
        Ok(Self { installed: Installed::new(state), source: Source::Recorded(trace) })
    }

    pub fn registers(&mut self, now: u32) -> Result<Registers, String> {
        let elapsed = self.installed.elapsed(now)?;
        Ok(match &self.source {
            Source::Simulated { export_w } => {
                Registers { exported_wh: export_w * u64::from(elapsed) / 3600, imported_wh: 0 }
            }
            Source::Recorded(trace) => trace.at(elapsed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nishati-meter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const TRACE: &str = "offset_secs,exported_wh,imported_wh\n\
        # a morning: importing until the sun is up, then exporting\n\
        0,1000,5000\n\
        300,1000,5040\n\
        600,1010,5041\n\
        900,1090,5041\n";

    #[test]
    fn a_trace_replays_both_registers_from_installation_and_holds_after_its_end() {
        let dir = state("replay");
        let trace = dir.join("trace.csv");
        std::fs::write(&trace, TRACE).unwrap();
        let mut meter = HostMeter::trace(&dir, &trace).unwrap();
        let at = |meter: &mut HostMeter, now| meter.registers(now).unwrap();
        let registers = |exported_wh, imported_wh| Registers { exported_wh, imported_wh };
        assert_eq!(at(&mut meter, 10_000), registers(1000, 5000));
        assert_eq!(at(&mut meter, 10_299), registers(1000, 5000));
        assert_eq!(at(&mut meter, 10_300), registers(1000, 5040));
        assert_eq!(at(&mut meter, 10_899), registers(1010, 5041));
        assert_eq!(at(&mut meter, 20_000), registers(1090, 5041));
        // A restarted runner goes on from the installation it kept.
        let mut restarted = HostMeter::trace(&dir, &trace).unwrap();
        assert_eq!(at(&mut restarted, 10_650), registers(1010, 5041));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_simulated_meter_exports_its_power_and_imports_nothing() {
        let dir = state("simulated");
        let mut meter = HostMeter::simulated(&dir, 3_600);
        assert_eq!(meter.registers(100).unwrap(), Registers { exported_wh: 0, imported_wh: 0 });
        assert_eq!(meter.registers(110).unwrap(), Registers { exported_wh: 10, imported_wh: 0 });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_trace_is_refused_with_its_line() {
        let cases = [
            ("", "the trace has no samples"),
            ("0,1,2\n0,1,2\n", "line 2: offset_secs 0 does not rise"),
            ("0,5,2\n60,4,2\n", "line 2: a register went backwards"),
            ("0,5,2\n60,5,1\n", "line 2: a register went backwards"),
            ("0,5\n", "line 1: expected offset_secs,exported_wh,imported_wh"),
            ("0,5,x\n", "line 1: imported_wh \"x\": invalid digit found in string"),
            ("4294967296,0,0\n", "line 1: offset_secs beyond 2^32 - 1"),
        ];
        for (text, error) in cases {
            assert_eq!(Trace::parse(text), Err(error.to_string()), "{text:?}");
        }
    }
}
