//! Interleaving several timed subjects so that their ratios hold on a noisy machine. The
//! children themselves are run and timed by [`crate::proc::run_input`] (its clock stops when the
//! child exits, not on a polling tick).

use anyhow::Result;

/// One subject of an interleaved measurement: called with the run index, returns the time of
/// what it measures in milliseconds (untimed set-up and clean-up may happen inside).
pub type Subject<'a> = Box<dyn FnMut(usize) -> Result<f64> + 'a>;

/// Runs every subject `warmup` times untimed, then `runs` rounds in which each subject runs
/// once. The order rotates and reverses from round to round, so no subject always follows the
/// same neighbour and slow drifts of the machine hit all of them alike. Returns the samples of
/// each subject, in the order given.
pub fn interleave(
    runs: usize,
    warmup: usize,
    subjects: &mut [Subject<'_>],
) -> Result<Vec<Vec<f64>>> {
    let n = subjects.len();
    for w in 0..warmup {
        for s in subjects.iter_mut() {
            s(usize::MAX - w)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(runs); n];
    for round in 0..runs {
        let mut order: Vec<usize> = (0..n).map(|i| (i + round) % n.max(1)).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            samples[i].push(subjects[i](round)?);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_every_subject_each_round_in_rotating_order() {
        let log = std::cell::RefCell::new(Vec::new());
        let mut subjects: Vec<Subject<'_>> = (0..3)
            .map(|k| -> Subject<'_> {
                let log = &log;
                Box::new(move |run| {
                    log.borrow_mut().push((k, run));
                    Ok(k as f64)
                })
            })
            .collect();
        let samples = interleave(2, 1, &mut subjects).unwrap();
        assert_eq!(samples, vec![vec![0.0; 2], vec![1.0; 2], vec![2.0; 2]]);
        let order: Vec<usize> = log.borrow().iter().skip(3).map(|(k, _)| *k).collect();
        assert_eq!(order, vec![0, 1, 2, 0, 2, 1]);
    }
}
