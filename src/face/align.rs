//! Alignment: a 5-point similarity transform (rotation, uniform scale,
//! translation) of the detected landmarks onto the ArcFace 112×112 template,
//! scaled to the embedder's input size. Embedders are trained on faces placed
//! exactly like this; a face that is merely cropped scores far worse.

use anyhow::{bail, Result};
use opencv::calib3d;
use opencv::core::{Mat, Point2f, Scalar, Size, Vector, BORDER_CONSTANT};
use opencv::imgproc;
use opencv::prelude::*;

use super::cv;
use super::detect::Landmarks;

/// Where the five landmarks sit on a 112×112 ArcFace crop.
pub const ARCFACE_112: Landmarks = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The template scaled to a `width × height` crop.
pub fn template(width: u32, height: u32) -> Landmarks {
    let (sx, sy) = (width as f32 / 112.0, height as f32 / 112.0);
    ARCFACE_112.map(|[x, y]| [x * sx, y * sy])
}

/// The 2×3 similarity transform (CV_64F) from frame landmarks to the template.
pub fn transform(landmarks: &Landmarks, width: u32, height: u32) -> Result<Mat> {
    if landmarks.iter().flatten().any(|v| !v.is_finite()) {
        bail!("face landmarks are not finite numbers");
    }
    let from: Vector<Point2f> = landmarks.iter().map(|p| Point2f::new(p[0], p[1])).collect();
    let to: Vector<Point2f> = template(width, height)
        .iter()
        .map(|p| Point2f::new(p[0], p[1]))
        .collect();
    let mut inliers = Mat::default();
    // A reprojection threshold far above any real error keeps all five points
    // as inliers: the result is the least-squares fit refined by
    // Levenberg-Marquardt, not a fit to a random pair of points.
    let m = cv(
        calib3d::estimate_affine_partial_2d(
            &from,
            &to,
            &mut inliers,
            calib3d::RANSAC,
            1.0e4,
            2000,
            0.99,
            10,
        ),
        "cannot estimate the alignment transform",
    )?;
    if m.empty() {
        bail!("face landmarks are degenerate; no alignment transform exists");
    }
    Ok(m)
}

/// The face warped onto the template at `width × height` (bilinear, black border).
pub fn align(frame: &Mat, landmarks: &Landmarks, width: u32, height: u32) -> Result<Mat> {
    let m = transform(landmarks, width, height)?;
    let mut out = Mat::default();
    cv(
        imgproc::warp_affine(
            frame,
            &mut out,
            &m,
            Size::new(width as i32, height as i32),
            imgproc::INTER_LINEAR,
            BORDER_CONSTANT,
            Scalar::all(0.0),
        ),
        "cannot warp the face onto the template",
    )?;
    Ok(out)
}

/// Applies a 2×3 transform (CV_64F) to a point; used to check alignments.
pub fn apply(m: &Mat, p: [f32; 2]) -> Result<[f32; 2]> {
    let at = |r: i32, c: i32| -> Result<f64> { cv(m.at_2d::<f64>(r, c).copied(), "transform") };
    let (x, y) = (p[0] as f64, p[1] as f64);
    Ok([
        (at(0, 0)? * x + at(0, 1)? * y + at(0, 2)?) as f32,
        (at(1, 0)? * x + at(1, 1)? * y + at(1, 2)?) as f32,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_of_a_rotated_scaled_face_land_on_the_template() {
        // The template rotated by 30°, scaled ×2.5 and moved: the fit must undo it exactly.
        let (s, a) = (2.5f32, 30f32.to_radians());
        let moved: Landmarks = ARCFACE_112.map(|[x, y]| {
            [
                s * (a.cos() * x - a.sin() * y) + 300.0,
                s * (a.sin() * x + a.cos() * y) + 120.0,
            ]
        });
        let m = transform(&moved, 112, 112).unwrap();
        for (p, t) in moved.iter().zip(ARCFACE_112.iter()) {
            let q = apply(&m, *p).unwrap();
            assert!(
                (q[0] - t[0]).abs() < 0.05 && (q[1] - t[1]).abs() < 0.05,
                "{q:?} vs {t:?}"
            );
        }
        // Scaled to 160, the same face lands on the scaled template.
        let m = transform(&moved, 160, 160).unwrap();
        let q = apply(&m, moved[2]).unwrap();
        assert!((q[0] - 56.0252 * 160.0 / 112.0).abs() < 0.05);
    }

    #[test]
    fn non_finite_landmarks_are_an_error_not_a_panic() {
        let mut bad = ARCFACE_112;
        bad[0][0] = f32::NAN;
        assert!(transform(&bad, 112, 112).is_err());
    }
}
