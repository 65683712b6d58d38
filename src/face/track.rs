//! A simple IoU tracker: the same face in consecutive frames keeps one track
//! id, so the policy can require several agreeing frames of *one* face rather
//! than of whoever happens to be in view.

use super::detect::BBox;

#[derive(Clone, Debug)]
struct Track {
    id: u64,
    bbox: BBox,
    missed: u32,
}

#[derive(Debug)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
    /// Minimum overlap for a detection to continue a track.
    pub min_iou: f32,
    /// Frames a track survives without a detection.
    pub max_missed: u32,
}

/// The result of one update: a track id per detection (same order), and the
/// tracks that ended.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    pub ids: Vec<u64>,
    pub ended: Vec<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(0.3, 5)
    }
}

impl Tracker {
    pub fn new(min_iou: f32, max_missed: u32) -> Tracker {
        Tracker {
            tracks: Vec::new(),
            next_id: 1,
            min_iou,
            max_missed,
        }
    }

    /// Matches this frame's boxes to the live tracks, greedily by best IoU.
    pub fn update(&mut self, boxes: &[BBox]) -> Assignment {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (d, b) in boxes.iter().enumerate() {
            for (t, track) in self.tracks.iter().enumerate() {
                let iou = track.bbox.iou(b);
                if iou >= self.min_iou {
                    pairs.push((iou, d, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut ids: Vec<Option<u64>> = vec![None; boxes.len()];
        let mut used = vec![false; self.tracks.len()];
        for (_, d, t) in pairs {
            if ids[d].is_none() && !used[t] {
                ids[d] = Some(self.tracks[t].id);
                used[t] = true;
                self.tracks[t].bbox = boxes[d];
                self.tracks[t].missed = 0;
            }
        }
        for (t, track) in self.tracks.iter_mut().enumerate() {
            if !used[t] {
                track.missed += 1;
            }
        }
        let max_missed = self.max_missed;
        let mut ended = Vec::new();
        self.tracks.retain(|t| {
            let keep = t.missed <= max_missed;
            if !keep {
                ended.push(t.id);
            }
            keep
        });
        let ids = ids
            .into_iter()
            .enumerate()
            .map(|(d, id)| {
                id.unwrap_or_else(|| {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id,
                        bbox: boxes[d],
                        missed: 0,
                    });
                    id
                })
            })
            .collect();
        Assignment { ids, ended }
    }

    pub fn live(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox {
            x,
            y: 0.0,
            w: 100.0,
            h: 100.0,
        }
    }

    #[test]
    fn a_moving_face_keeps_its_id_and_a_new_face_gets_a_new_one() {
        let mut t = Tracker::new(0.3, 1);
        let a = t.update(&[b(0.0)]);
        assert_eq!(a.ids, vec![1]);
        let a = t.update(&[b(10.0), b(500.0)]);
        assert_eq!(a.ids, vec![1, 2]);
        // Order of detections does not matter.
        let a = t.update(&[b(510.0), b(20.0)]);
        assert_eq!(a.ids, vec![2, 1]);
    }

    #[test]
    fn a_face_missing_too_long_ends_its_track() {
        let mut t = Tracker::new(0.3, 1);
        t.update(&[b(0.0)]);
        assert!(t.update(&[]).ended.is_empty());
        assert_eq!(t.update(&[]).ended, vec![1]);
        assert_eq!(t.live(), 0);
        // Reappearing later is a new track.
        assert_eq!(t.update(&[b(0.0)]).ids, vec![2]);
    }
}
