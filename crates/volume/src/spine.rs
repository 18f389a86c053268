//! Spine localisation: the column centreline and vertebral body centres (issue 3).
