//! What the tool reads from the pages' HTML: links, board rows, counts.

/// The `href` of the element with `id` in `html` (attributes unescaped).
pub(crate) fn href_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_end = at + html[at..].find('>')?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_end];
    let from = tag.find("href=\"")? + 6;
    let to = from + tag[from..].find('"')?;
    Some(tag[from..to].replace("&amp;", "&"))
}

/// The release ids of a board page's rows.
pub(crate) fn board_ids(html: &str) -> Vec<String> {
    html.match_indices("data-release=\"")
        .filter_map(|(at, m)| {
            let from = at + m.len();
            html[from..].find('"').map(|to| html[from..from + to].to_owned())
        })
        .collect()
}

/// The count shown for `name` in `#counts`.
pub(crate) fn count_of(html: &str, name: &str) -> Option<u64> {
    let marker = format!("data-count=\"{name}\">");
    let from = html.find(&marker)? + marker.len();
    html[from..].split('<').next()?.trim().parse().ok()
}
