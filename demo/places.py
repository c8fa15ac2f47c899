"""Where the demo world's people live: countries with their regions, legal forms, phone
prefixes and names, and the mail domains that are not a company's own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    tld: str
    legal_forms: tuple[str, ...]
    phone_prefix: str
    names: str
    regions: tuple[tuple[str, tuple[str, ...]], ...]


# fmt: off
COUNTRIES: tuple[Country, ...] = (
    Country("DE", 22, "de", ("GmbH", "AG", "GmbH & Co. KG"), "+49", "de", (
        ("Bavaria", ("Munich", "Nuremberg", "Augsburg", "Regensburg")),
        ("Berlin", ("Berlin",)),
        ("Hamburg", ("Hamburg",)),
        ("North Rhine-Westphalia", ("Cologne", "Düsseldorf", "Dortmund", "Essen", "Bonn")),
        ("Baden-Württemberg", ("Stuttgart", "Karlsruhe", "Mannheim", "Freiburg")),
        ("Hesse", ("Frankfurt am Main", "Wiesbaden", "Darmstadt")),
        ("Saxony", ("Leipzig", "Dresden")),
    )),
    Country("US", 14, "com", ("Inc.", "LLC", "Corp."), "+1", "en", (
        ("California", ("San Francisco", "Los Angeles", "San Diego", "San Jose")),
        ("New York", ("New York", "Buffalo")),
        ("Texas", ("Austin", "Dallas", "Houston")),
        ("Massachusetts", ("Boston", "Cambridge")),
        ("Illinois", ("Chicago",)),
        ("Washington", ("Seattle", "Bellevue")),
    )),
    Country("GB", 12, "co.uk", ("Ltd", "PLC"), "+44", "en", (
        ("England", ("London", "Manchester", "Birmingham", "Leeds", "Bristol", "Cambridge")),
        ("Scotland", ("Edinburgh", "Glasgow", "Aberdeen")),
        ("Wales", ("Cardiff", "Swansea")),
    )),
    Country("FR", 8, "fr", ("SAS", "SA", "SARL"), "+33", "fr", (
        ("Île-de-France", ("Paris", "Boulogne-Billancourt")),
        ("Auvergne-Rhône-Alpes", ("Lyon", "Grenoble")),
        ("Provence-Alpes-Côte d'Azur", ("Marseille", "Nice")),
        ("Occitanie", ("Toulouse", "Montpellier")),
        ("Nouvelle-Aquitaine", ("Bordeaux",)),
    )),
    Country("NL", 7, "nl", ("B.V.", "N.V."), "+31", "nl", (
        ("North Holland", ("Amsterdam", "Haarlem")),
        ("South Holland", ("Rotterdam", "The Hague", "Leiden")),
        ("Utrecht", ("Utrecht",)),
        ("North Brabant", ("Eindhoven", "Tilburg")),
    )),
    Country("AT", 5, "at", ("GmbH", "AG"), "+43", "de", (
        ("Vienna", ("Vienna",)),
        ("Styria", ("Graz",)),
        ("Upper Austria", ("Linz",)),
        ("Salzburg", ("Salzburg",)),
        ("Tyrol", ("Innsbruck",)),
    )),
    Country("CH", 5, "ch", ("AG", "GmbH", "SA"), "+41", "de", (
        ("Zurich", ("Zurich", "Winterthur")),
        ("Geneva", ("Geneva",)),
        ("Bern", ("Bern",)),
        ("Basel-Stadt", ("Basel",)),
        ("Vaud", ("Lausanne",)),
    )),
    Country("ES", 5, "es", ("S.L.", "S.A."), "+34", "es", (
        ("Madrid", ("Madrid",)),
        ("Catalonia", ("Barcelona", "Girona")),
        ("Valencia", ("Valencia", "Alicante")),
        ("Andalusia", ("Seville", "Málaga")),
        ("Basque Country", ("Bilbao",)),
    )),
    Country("IT", 5, "it", ("S.r.l.", "S.p.A."), "+39", "it", (
        ("Lombardy", ("Milan", "Bergamo", "Brescia")),
        ("Lazio", ("Rome",)),
        ("Piedmont", ("Turin",)),
        ("Emilia-Romagna", ("Bologna", "Modena")),
        ("Veneto", ("Venice", "Verona")),
    )),
    Country("SE", 4, "se", ("AB",), "+46", "nordic", (
        ("Stockholm", ("Stockholm",)),
        ("Västra Götaland", ("Gothenburg",)),
        ("Skåne", ("Malmö", "Lund")),
    )),
    Country("DK", 3, "dk", ("ApS", "A/S"), "+45", "nordic", (
        ("Capital Region", ("Copenhagen",)),
        ("Central Jutland", ("Aarhus",)),
        ("Southern Denmark", ("Odense",)),
    )),
    Country("PL", 5, "pl", ("sp. z o.o.", "S.A."), "+48", "pl", (
        ("Masovia", ("Warsaw",)),
        ("Lesser Poland", ("Kraków",)),
        ("Lower Silesia", ("Wrocław",)),
        ("Pomerania", ("Gdańsk", "Gdynia")),
    )),
    Country("IE", 3, "ie", ("Ltd", "DAC"), "+353", "en", (
        ("Leinster", ("Dublin", "Kilkenny")),
        ("Munster", ("Cork", "Limerick")),
        ("Connacht", ("Galway",)),
    )),
)
# fmt: on
COUNTRY_WEIGHTS = [c.weight for c in COUNTRIES]

# fmt: off
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "de": (
        ("Anna", "Lukas", "Julia", "Maximilian", "Laura", "Felix", "Sophie", "Jonas", "Lena",
         "Tobias", "Katharina", "Stefan", "Sabine", "Jürgen", "Miriam", "Thomas", "Claudia",
         "Matthias", "Nina", "Florian", "Andrea", "Markus"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
         "Zimmermann", "Braun", "Krüger", "Hofmann", "Lange", "Weiß"),
    ),
    "en": (
        ("James", "Emma", "Oliver", "Olivia", "Harry", "Amelia", "George", "Sophia", "Jack",
         "Isla", "Michael", "Sarah", "David", "Emily", "Daniel", "Jessica", "Chris", "Hannah",
         "Ryan", "Megan", "Priya", "Wei", "Carlos", "Aisha"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans",
         "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards",
         "Green", "Hall", "Murphy", "O'Brien", "Kelly", "Patel", "Chen"),
    ),
    "fr": (
        ("Camille", "Louis", "Léa", "Hugo", "Chloé", "Gabriel", "Manon", "Jules", "Inès",
         "Arthur", "Élodie", "Nicolas", "Julien", "Céline", "Mathieu", "Pauline"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
         "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Roux", "Fournier"),
    ),
    "nl": (
        ("Daan", "Emma", "Sem", "Julia", "Lucas", "Sanne", "Bram", "Lotte", "Thijs", "Fleur",
         "Jeroen", "Anouk", "Ruben", "Eva", "Niels", "Femke"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser",
         "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks"),
    ),
    "es": (
        ("Lucía", "Hugo", "Martina", "Pablo", "María", "Daniel", "Paula", "Alejandro", "Carmen",
         "Javier", "Sofía", "Sergio", "Elena", "Diego", "Laura", "Álvaro"),
        ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez",
         "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno",
         "Álvarez"),
    ),
    "it": (
        ("Giulia", "Alessandro", "Francesca", "Lorenzo", "Chiara", "Matteo", "Sara", "Andrea",
         "Martina", "Luca", "Elena", "Marco", "Valentina", "Davide", "Federica", "Simone"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
         "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Costa", "Giordano"),
    ),
    "nordic": (
        ("Erik", "Anna", "Lars", "Maja", "Johan", "Elsa", "Anders", "Ingrid", "Magnus",
         "Freja", "Nils", "Sofie", "Mikkel", "Astrid", "Oskar", "Ida"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsen", "Jensen",
         "Nielsen", "Hansen", "Pedersen", "Lindqvist", "Berg", "Lund", "Holm", "Dahl",
         "Sørensen"),
    ),
    "pl": (
        ("Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka", "Michał",
         "Joanna", "Krzysztof", "Aleksandra", "Marcin", "Zofia", "Jakub", "Ewa", "Łukasz"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
         "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur",
         "Kwiatkowski", "Krawczyk"),
    ),
}

# fmt: on
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "gmx.de",
    "web.de",
    "proton.me",
    "orange.fr",
    "libero.it",
)
DISPOSABLE_DOMAINS = ("mailinator.com", "yopmail.com", "10minutemail.com", "guerrillamail.com")
COMPETITOR_DOMAINS = ("pipedrive.com", "hubspot.com", "salesforce.com", "zoho.com")
SPAM_LOCAL_PARTS = ("test", "asdf", "qwerty", "noreply", "xxx", "aaa", "fake", "spam")
