"""`funkload.Lipsum`: random words, sentences, phone numbers and addresses.

Tests use it to fill forms with plausible text.  The vocabulary is Marteau's
own list of Latin-looking words (not FunkLoad's text).
"""

from __future__ import annotations

import random

_WORDS = """
    alba ambulat amicus aqua arbor ardens aurum bellum bene bonus caelum campus
    canis carmen castra causa celer cena certus civis clarus colles corpus cras
    cursus densus deus dies domus donum dulcis durus ecce equus error exemplum
    faber fama ferrum fides filum flamma flumen fortis forum frater frons fructus
    gaudium gens gloria gratia gravis habitat hiems hora hortus ignis imago iter
    iustus labor lacus laetus lapis latus lex liber lumen luna lux magnus manus
    mare mater mensa miles mons mores mundus murus natura navis nemus nihil nix
    nomen novus nox nubes numerus oculus opus ordo otium pagina panis pars pater
    pax pectus pes pictura pila pons porta portus primus puer pulcher quies ratio
    regina rex ripa rosa rota sal saxum schola semper senex silva sol somnus
    spes stella tempus terra timor turris umbra unda urbs utilis varius velox
    ventus verbum via vinum virtus vita vox
    """
VOCABULARY = tuple(_WORDS.split())
UNIQ_CHARS = "abcdefghjkmnopqrstuvwxyz123456789"
SEPARATORS = (",", ",", ",", ";", ":", " -")
CITIES = (
    ("Paris", "75"),
    ("Lyon", "69"),
    ("Nantes", "44"),
    ("Lille", "59"),
    ("Rennes", "35"),
    ("Toulouse", "31"),
)
US_CITIES = (
    ("Springfield", "IL"),
    ("Portland", "OR"),
    ("Madison", "WI"),
    ("Austin", "TX"),
    ("Boulder", "CO"),
)
STREET_KINDS_FR = ("rue", "avenue", "boulevard", "place", "impasse", "allée")
STREET_KINDS_EN = ("Street", "Avenue", "Road", "Lane", "Boulevard")


class Lipsum:
    """Random text generator with FunkLoad's method names and signatures."""

    def __init__(
        self,
        vocab: tuple[str, ...] | list[str] = VOCABULARY,
        chars: str = UNIQ_CHARS,
        sep: tuple[str, ...] | list[str] = SEPARATORS,
    ) -> None:
        self.vocab = list(vocab)
        self.chars = chars
        self.sep = list(sep)

    def getWord(self) -> str:
        """One word of the vocabulary."""
        return random.choice(self.vocab)

    def getUniqWord(self, length_min: int | None = None, length_max: int | None = None) -> str:
        """A random token, 5 to 8 characters by default, unlikely to repeat."""
        low = length_min or 5
        high = length_max or 8
        if high < low:
            high = low
        return "".join(random.choice(self.chars) for _ in range(random.randint(low, high)))

    def getSubject(
        self,
        length: int = 5,
        prefix: str | None = None,
        uniq: bool = False,
        length_min: int | None = None,
        length_max: int | None = None,
    ) -> str:
        """A capitalised title of about ``length`` words, optionally with a unique word."""
        if length_min is not None or length_max is not None:
            length = random.randint(length_min or 1, length_max or max(length_min or 1, length))
        words = [self.getWord() for _ in range(max(length, 1))]
        if uniq:
            words.append(self.getUniqWord())
        subject = " ".join(words).capitalize()
        if prefix:
            subject = f"{prefix} {subject}"
        return subject

    def getSentence(self) -> str:
        """A sentence of 5 to 15 words with some punctuation, ending with a dot."""
        count = random.randint(5, 15)
        words = [self.getWord() for _ in range(count)]
        if count > 6 and random.random() < 0.5:
            at = random.randint(2, count - 3)
            words[at] += random.choice(self.sep)
        return " ".join(words).capitalize() + "."

    def getParagraph(self, length: int = 4) -> str:
        """``length`` sentences."""
        return " ".join(self.getSentence() for _ in range(max(length, 1)))

    def getMessage(self, length: int = 7) -> str:
        """``length`` paragraphs separated by blank lines."""
        return "\n\n".join(self.getParagraph(random.randint(2, 6)) for _ in range(max(length, 1)))

    def getPhoneNumber(self, lang: str = "fr", format: str = "medium") -> str:
        """A phone number: lang ``fr`` or ``en_US``; format ``short``, ``medium`` or ``long``."""

        def digits(count: int) -> str:
            return "".join(str(random.randint(0, 9)) for _ in range(count))

        if lang == "en_US":
            area, exchange, line = str(random.randint(201, 989)), digits(3), digits(4)
            if format == "short":
                return f"{exchange}-{line}"
            if format == "long":
                return f"+1 ({area}) {exchange}-{line}"
            return f"({area}) {exchange}-{line}"
        pairs = " ".join(digits(2) for _ in range(4))
        if format == "short":
            return pairs
        if format == "long":
            return f"+33 (0){random.randint(1, 9)} {pairs}"
        return f"0{random.randint(1, 9)} {pairs}"

    def getAddress(self, lang: str = "fr") -> str:
        """A postal address in the style of ``lang`` (``fr`` or ``en_US``)."""
        number = random.randint(1, 199)
        name = self.getWord().capitalize()
        if lang == "en_US":
            city, state = random.choice(US_CITIES)
            kind = random.choice(STREET_KINDS_EN)
            return f"{number} {name} {kind}\n{city}, {state} {random.randint(10000, 99999)}"
        city, department = random.choice(CITIES)
        kind = random.choice(STREET_KINDS_FR)
        return f"{number} {kind} {name}\n{department}{random.randint(0, 999):03d} {city}"
