//! Full-text search on the read side (`GET /v1/events?q=`, `GET /v1/titles?q=`): an
//! in-RAM `tantivy` index of every event's and title's words, with typo tolerance (each
//! word matches terms within an edit distance that grows with its length, transpositions
//! counting one, and as a prefix) and `did_you_mean` suggestions. The index answers which
//! events or titles match the words; everything else (city, dates, places, distance,
//! sorting, paging, availability) is answered from the read models and the catalog.
//!
//! The index follows the read models lazily: the shard followers note the events that an
//! outcome made, changed or canceled, the control follower notes relisted events and
//! changed titles ([`SearchChanges`]), and a search first re-indexes what was noted since
//! the last one (one commit), so a search never misses a change applied before it began.
//! The first search indexes everything (a read model restored from a snapshot included).

use crate::catalog::Catalog;
use crate::read_model::ReadModel;
use engine::{EventId, Reply};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Words of a query that are searched (more are ignored: a query is a few words).
pub(crate) const QUERY_WORDS_MAX: usize = 8;
/// The index writer's memory (tantivy's minimum is 15 MB).
const WRITER_MEMORY_BYTES: usize = 20_000_000;
/// Documents looked at for a misspelt word's suggestion.
const SUGGESTION_DOCS_MAX: usize = 20;
const TOKENIZER: &str = "folded";

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Event,
    Title,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Title => "title",
        }
    }
}

/// Events and titles whose words changed since the last search.
#[derive(Default)]
pub(crate) struct SearchChanges {
    changed: Mutex<ChangeSet>,
}

#[derive(Default)]
struct ChangeSet {
    events: BTreeSet<EventId>,
    titles: BTreeSet<(String, String)>,
}

impl SearchChanges {
    /// Notes the event an outcome's reply made, changed or canceled.
    pub(crate) fn note_reply(&self, reply: &Reply) {
        let event = match reply {
            Reply::EventCreated { event, .. }
            | Reply::EventUpdated { event, .. }
            | Reply::EventCanceled { event, .. } => *event,
            _ => return,
        };
        self.note_event(event);
    }

    pub(crate) fn note_event(&self, event: EventId) {
        self.lock().events.insert(event);
    }

    /// A title changed: it, and every event listed under it.
    pub(crate) fn note_title(&self, tenant: &str, title: &str) {
        self.lock()
            .titles
            .insert((tenant.to_string(), title.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChangeSet> {
        self.changed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> ChangeSet {
        std::mem::take(&mut *self.lock())
    }
}

struct Fields {
    /// `e<event id>` or `t<title ordinal>`: what a re-index deletes by.
    key: Field,
    kind: Field,
    /// The event id or the title's ordinal ([`Indexed::titles`]).
    id: Field,
    text: Field,
    /// An event's city, lower case: `city=` selects from the index, not by a walk.
    city: Field,
}

struct Indexed {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    title_ordinals: HashMap<(String, String), u64>,
    /// Something was added or deleted since the last commit.
    dirty: bool,
}

/// The search index of this ingress.
#[derive(Default)]
pub(crate) struct SearchIndex {
    /// Noted by the shard followers.
    pub(crate) changes: std::sync::Arc<SearchChanges>,
    indexed: Mutex<Option<Indexed>>,
    /// Title ordinals, shared with searches that read outside the writer's lock.
    titles: RwLock<Vec<(String, String)>>,
}

/// What a text search found: event ids or (tenant, title id), and a spelling suggestion.
pub(crate) struct TextMatch<T> {
    pub(crate) found: HashSet<T>,
    pub(crate) did_you_mean: Option<String>,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let key = builder.add_text_field("key", STRING);
    let kind = builder.add_text_field("kind", STRING);
    let id = builder.add_u64_field("id", FAST);
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let text = builder.add_text_field("text", text_options);
    let city = builder.add_text_field("city", STRING);
    (
        builder.build(),
        Fields {
            key,
            kind,
            id,
            text,
            city,
        },
    )
}

/// Lower case, accents folded ("Café" finds "cafe"), words longer than 40 bytes dropped.
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The query's words as the index holds them.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

/// Edits a word may be away from a term and still match: none for short words (any typo
/// in three letters is another word), one up to six letters, two past that.
fn distance_for(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

fn event_text(event: &crate::read_model::EventRecord, catalog: &Catalog) -> String {
    let spec = &event.spec;
    let title = catalog
        .listing(event.id)
        .and_then(|(tenant, listing)| {
            listing
                .title
                .as_deref()
                .and_then(|title| catalog.title(tenant, title))
        })
        .map(|title| title.name.as_str())
        .unwrap_or_default();
    format!(
        "{} {} {} {} {}",
        spec.name, title, spec.venue, spec.city, spec.description
    )
}

impl Indexed {
    fn new() -> tantivy::Result<Indexed> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Indexed {
            writer,
            reader,
            fields,
            title_ordinals: HashMap::new(),
            dirty: false,
        })
    }

    fn put_event(
        &mut self,
        models: &[&ReadModel],
        shard_count: u32,
        event: EventId,
        catalog: &Catalog,
    ) {
        let key = format!("e{}", u64::from(event));
        self.dirty = true;
        self.writer
            .delete_term(Term::from_field_text(self.fields.key, &key));
        let model = models[engine::shard_of(event.into(), shard_count) as usize];
        if let Some(record) = model.event(event) {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.key, &key);
            doc.add_text(self.fields.kind, Kind::Event.word());
            doc.add_u64(self.fields.id, event.into());
            doc.add_text(self.fields.text, event_text(record, catalog));
            doc.add_text(self.fields.city, record.spec.city.to_lowercase());
            // Only fails once the writer's threads died: a bug.
            self.writer
                .add_document(doc)
                .expect("the search index writer accepts documents");
        }
    }

    /// `titles` is the shared ordinal table (title ordinal → (tenant, title id); ordinals
    /// are never reused).
    fn put_title(
        &mut self,
        titles: &RwLock<Vec<(String, String)>>,
        tenant: &str,
        title: &str,
        catalog: &Catalog,
    ) {
        let pair = (tenant.to_string(), title.to_string());
        let ordinal = match self.title_ordinals.get(&pair) {
            Some(ordinal) => *ordinal,
            None => {
                let mut titles = titles
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let ordinal = titles.len() as u64;
                titles.push(pair.clone());
                self.title_ordinals.insert(pair, ordinal);
                ordinal
            }
        };
        let key = format!("t{ordinal}");
        self.dirty = true;
        self.writer
            .delete_term(Term::from_field_text(self.fields.key, &key));
        if let Some(record) = catalog.title(tenant, title) {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.key, &key);
            doc.add_text(self.fields.kind, Kind::Title.word());
            doc.add_u64(self.fields.id, ordinal);
            doc.add_text(
                self.fields.text,
                format!("{} {} {}", record.name, record.kind, record.description),
            );
            self.writer
                .add_document(doc)
                .expect("the search index writer accepts documents");
        }
    }
}

impl SearchIndex {
    /// Brings the index up to date with the read models and the catalog: everything the
    /// first time, then what was noted since (`catalog_changes`: the control follower's
    /// notes). A reader of the index as it then is.
    fn refresh(
        &self,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<(IndexReader, Field, Field, Field)> {
        let mut guard = self
            .indexed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Taken before the models are read: a change applied after this is noted again
        // and indexed by the next search.
        let mut changes = self.changes.take();
        let catalog_noted = catalog_changes.take();
        changes.events.extend(catalog_noted.events);
        changes.titles.extend(catalog_noted.titles);
        let shard_count = models.len() as u32;
        let indexed = match guard.as_mut() {
            Some(indexed) => {
                let mut events = changes.events;
                for (tenant, title) in &changes.titles {
                    indexed.put_title(&self.titles, tenant, title, catalog);
                    events.extend(catalog.shows(tenant, title));
                }
                for event in events {
                    indexed.put_event(models, shard_count, event, catalog);
                }
                indexed
            }
            None => {
                let mut indexed = Indexed::new()?;
                for model in models {
                    for event in model.event_ids() {
                        indexed.put_event(models, shard_count, event, catalog);
                    }
                }
                for (tenant, title, _) in catalog.all_titles() {
                    indexed.put_title(&self.titles, tenant, title, catalog);
                }
                indexed.dirty = true;
                guard.insert(indexed)
            }
        };
        if indexed.dirty {
            indexed.writer.commit()?;
            indexed.reader.reload()?;
            indexed.dirty = false;
        }
        let fields = &indexed.fields;
        Ok((
            indexed.reader.clone(),
            fields.kind,
            fields.text,
            fields.city,
        ))
    }

    /// The events or titles (by ordinal) whose words match every word of `query`, each
    /// within its typo distance or as a prefix; and, when a word is not in the index as
    /// typed, the query with it replaced by the closest word that is. `city`: only events
    /// in it (case-insensitive).
    fn search(
        &self,
        kind: Kind,
        query: &str,
        city: Option<&str>,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<u64>> {
        let (reader, kind_field, text_field, city_field) =
            self.refresh(models, catalog, catalog_changes)?;
        let searcher = reader.searcher();
        let words: Vec<String> = words(query).into_iter().take(QUERY_WORDS_MAX).collect();
        let of_kind: Box<dyn Query> = Box::new(TermQuery::new(
            Term::from_field_text(kind_field, kind.word()),
            IndexRecordOption::Basic,
        ));
        let mut clauses = vec![(Occur::Must, of_kind.box_clone())];
        if let Some(city) = city {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(city_field, &city.to_lowercase()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        for word in &words {
            let term = Term::from_field_text(text_field, word);
            let either: Vec<(Occur, Box<dyn Query>)> = vec![
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term.clone(), distance_for(word), true)),
                ),
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term, 0, true)),
                ),
            ];
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        let matched = searcher.search(&BooleanQuery::new(clauses), &DocSetCollector)?;
        let mut found = HashSet::with_capacity(matched.len());
        let mut columns = HashMap::new();
        for address in matched {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                columns.entry(address.segment_ord)
            {
                entry.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("id")?,
                );
            }
            if let Some(id) = columns[&address.segment_ord].first(address.doc_id) {
                found.insert(id);
            }
        }
        // Suggestions: a word the index does not hold as typed is replaced by the closest
        // word of the documents its fuzzy form finds (the most frequent among equals).
        let mut suggested = words.clone();
        let mut changed = false;
        for (index, word) in words.iter().enumerate() {
            let term = Term::from_field_text(text_field, word);
            if searcher.doc_freq(&term)? > 0 {
                continue;
            }
            let near = BooleanQuery::new(vec![
                (Occur::Must, of_kind.box_clone()),
                (
                    Occur::Must,
                    Box::new(FuzzyTermQuery::new(term, distance_for(word).max(1), true)),
                ),
            ]);
            let top = searcher.search(
                &near,
                &TopDocs::with_limit(SUGGESTION_DOCS_MAX).order_by_score(),
            )?;
            let mut counts: HashMap<String, usize> = HashMap::new();
            for (_, address) in top {
                let doc: TantivyDocument = searcher.doc(address)?;
                if let Some(text) = doc.get_first(text_field).and_then(|value| value.as_str()) {
                    for candidate in self::words(text) {
                        *counts.entry(candidate).or_default() += 1;
                    }
                }
            }
            let best = counts
                .into_iter()
                .map(|(candidate, count)| {
                    (
                        strsim::damerau_levenshtein(word, &candidate),
                        std::cmp::Reverse(count),
                        candidate,
                    )
                })
                .filter(|(distance, _, _)| *distance > 0 && *distance <= 2)
                .min();
            if let Some((_, _, candidate)) = best {
                suggested[index] = candidate;
                changed = true;
            }
        }
        Ok(TextMatch {
            found,
            did_you_mean: changed.then(|| suggested.join(" ")),
        })
    }

    /// The events matching `query` (see [`SearchIndex::search`]), in `city` if given.
    pub(crate) fn events(
        &self,
        query: &str,
        city: Option<&str>,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<EventId>> {
        let matched = self.search(Kind::Event, query, city, models, catalog, catalog_changes)?;
        Ok(TextMatch {
            found: matched
                .found
                .into_iter()
                .filter_map(|id| u32::try_from(id).ok().map(EventId))
                .collect(),
            did_you_mean: matched.did_you_mean,
        })
    }

    /// The titles matching `query`, as (tenant, title id).
    pub(crate) fn titles(
        &self,
        query: &str,
        models: &[&ReadModel],
        catalog: &Catalog,
        catalog_changes: &SearchChanges,
    ) -> tantivy::Result<TextMatch<(String, String)>> {
        let matched = self.search(Kind::Title, query, None, models, catalog, catalog_changes)?;
        let titles = self
            .titles
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(TextMatch {
            found: matched
                .found
                .into_iter()
                .filter_map(|ordinal| titles.get(ordinal as usize).cloned())
                .collect(),
            did_you_mean: matched.did_you_mean,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_typos_allowed_by_length() {
        assert_eq!(
            words("Le Dôme, CAFÉ-théâtre"),
            ["le", "dome", "cafe", "theatre"]
        );
        assert_eq!(
            ["abc", "abcd", "abcdef", "abcdefg"].map(distance_for),
            [0, 1, 1, 2]
        );
    }
}
